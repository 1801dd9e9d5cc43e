import RelayCore
import Testing

@Suite struct DeliveryStatisticsTests {
    @Test(arguments: [
        ("gmail-smtp-in.l.google.com", "example.org", MailboxProvider.google),
        ("ASPMX.L.GOOGLE.COM.", "example.org", .google),
        ("alt1.gmr-smtp-in.l.googlemail.com", "example.org", .google),
        ("example-org.mail.protection.outlook.com", "example.org", .microsoft),
        ("hotmail-com.olc.protection.outlook.com", "hotmail.com", .microsoft),
        ("mta5.am0.yahoodns.net", "yahoo.com", .yahoo),
        ("mx-aol.mail.gm0.yahoodns.net", "aol.com", .yahoo),
        ("mx01.mail.icloud.com", "icloud.com", .apple),
        ("mx.example.org", "example.org", .other),
        ("notgoogle.com", "example.org", .other),
    ])
    func providersAreRecognisedByTheirMXHosts(mx: String, domain: String, provider: MailboxProvider) {
        #expect(MailboxProvider.classify(mx: mx, domain: domain) == provider)
    }

    @Test func beforeAnMXIsKnownTheBigConsumerDomainsAreRecognised() {
        #expect(MailboxProvider.classify(mx: nil, domain: "GMail.com") == .google)
        #expect(MailboxProvider.classify(mx: nil, domain: "outlook.com") == .microsoft)
        #expect(MailboxProvider.classify(mx: nil, domain: "ymail.com") == .yahoo)
        #expect(MailboxProvider.classify(mx: nil, domain: "me.com") == .apple)
        #expect(MailboxProvider.classify(mx: nil, domain: "example.org") == .other)
    }

    @Test func latencyBucketsGrowByTwentyPercentAndCoverTheMessageLifetime() {
        #expect(LatencyHistogram.bucket(milliseconds: 0) == 0)
        #expect(LatencyHistogram.bucket(milliseconds: 9.9) == 0)
        #expect(LatencyHistogram.bucket(milliseconds: 10) == 1)
        #expect(LatencyHistogram.bucket(milliseconds: 11.99) == 1)
        #expect(LatencyHistogram.bucket(milliseconds: 12.01) == 2)
        #expect(LatencyHistogram.bucket(milliseconds: 1e12) == LatencyHistogram.bucketCount - 1)
        // The last bucket starts after 6.6 days, beyond the default 5-day message lifetime.
        #expect(LatencyHistogram.upperBound(of: LatencyHistogram.bucketCount - 2) > 6.6 * 86_400_000)
        for ms in [15.0, 480, 2_500, 61_000, 3_700_000] {
            let bucket = LatencyHistogram.bucket(milliseconds: ms)
            #expect(LatencyHistogram.upperBound(of: bucket) > ms)
            #expect(LatencyHistogram.upperBound(of: bucket) <= ms * 1.2 + 0.001)
        }
    }

    @Test func quantilesReadTheHistogramByRank() {
        // 90 fast deliveries (bucket of 100 ms) and 10 slow ones (bucket of 60 s).
        let fast = LatencyHistogram.bucket(milliseconds: 100)
        let slow = LatencyHistogram.bucket(milliseconds: 60_000)
        let counts = [fast: 90, slow: 10]
        let fastBound = Int(LatencyHistogram.upperBound(of: fast).rounded())
        let slowBound = Int(LatencyHistogram.upperBound(of: slow).rounded())
        #expect(LatencyHistogram.quantile(0.5, counts: counts) == fastBound)
        #expect(LatencyHistogram.quantile(0.9, counts: counts) == fastBound)
        #expect(LatencyHistogram.quantile(0.95, counts: counts) == slowBound)
        #expect(LatencyHistogram.quantile(0.99, counts: counts) == slowBound)
        #expect(LatencyHistogram.quantile(0.5, counts: [:]) == nil)
    }

    @Test func ratesCountOnlyFinishedAttempts() {
        #expect(DeliveryRates.deliveryRate(delivered: 8, bounced: 1, failed: 1) == 0.8)
        #expect(DeliveryRates.bounceRate(delivered: 8, bounced: 1, failed: 1) == 0.1)
        #expect(DeliveryRates.deliveryRate(delivered: 0, bounced: 0, failed: 0) == nil)
        #expect(DeliveryRates.bounceRate(delivered: 0, bounced: 0, failed: 0) == nil)
    }
}
