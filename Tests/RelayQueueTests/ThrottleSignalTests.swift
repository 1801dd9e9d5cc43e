import RelayCore
import Testing

@testable import RelayQueue

/// Which MX replies lower the host's cluster-wide connection limit.
@Suite struct ThrottleSignalTests {
    @Test(arguments: [
        DeliveryReply(code: 421, enhanced: "4.7.0", text: "Too many concurrent SMTP connections; please try again later"),
        DeliveryReply(code: 421, enhanced: nil, text: "Service not available, closing transmission channel"),
        DeliveryReply(code: 451, enhanced: "4.7.1", text: "Rate limit exceeded, try again later"),
        DeliveryReply(code: 450, enhanced: "4.7.28", text: "Our system has detected an unusual rate of unsolicited mail"),
        DeliveryReply(code: 451, enhanced: nil, text: "Throttled: too many connections from your IP"),
        DeliveryReply(code: 452, enhanced: "4.7.0", text: "Connection limit exceeded"),
    ])
    func slowDownRepliesAreThrottles(reply: DeliveryReply) {
        #expect(ClusterConnectionLimiter.isThrottle(reply))
    }

    @Test(arguments: [
        DeliveryReply(code: 452, enhanced: "4.5.3", text: "Too many recipients"),
        DeliveryReply(code: 451, enhanced: "4.7.1", text: "Greylisted, please try again in 300 seconds"),
        DeliveryReply(code: 450, enhanced: "4.2.0", text: "Recipient address rejected: Greylisted"),
        DeliveryReply(code: 451, enhanced: "4.3.0", text: "Temporary local problem"),
        DeliveryReply(code: 550, enhanced: "5.7.1", text: "Rate limit exceeded permanently"),
        DeliveryReply(code: 452, enhanced: "4.2.2", text: "Mailbox full"),
        DeliveryReply(code: 250, enhanced: "2.0.0", text: "OK"),
    ])
    func otherRepliesAreNot(reply: DeliveryReply) {
        #expect(!ClusterConnectionLimiter.isThrottle(reply))
    }
}
