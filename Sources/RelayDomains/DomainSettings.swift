/// How Relay describes and checks sender domains.
public struct DomainSettings: Sendable {
    /// `RELAY_HOSTNAME`: where the return-path host's MX must point (the inbound listener) and the SPF host when
    /// no include is configured.
    public var hostname: String
    /// `RELAY_BOUNCE_DOMAIN`: when set, envelope senders use it instead of `bounces.<domain>`, so the user
    /// publishes no return-path record.
    public var bounceDomain: String?
    /// `RELAY_SPF_INCLUDE`: the SPF mechanism users add is `include:<this>` (e.g. `_spf.relay.example.net`, a record
    /// the operator keeps listing every sending IP); unset → `a:<RELAY_HOSTNAME>`.
    public var spfInclude: String?
    /// `RELAY_DKIM_ROTATION_GRACE` (default 7d): how long a replaced key stays published after its successor
    /// starts signing, so that mail signed before the rotation still verifies.
    public var rotationGrace: Duration = .seconds(7 * 86_400)
    /// `RELAY_DOMAIN_RECHECK_INTERVAL` (default 1h): how often each domain's records are checked again.
    public var recheckInterval: Duration = .seconds(3600)

    /// Creates settings.
    public init(hostname: String, bounceDomain: String? = nil, spfInclude: String? = nil) {
        self.hostname = hostname
        self.bounceDomain = bounceDomain
        self.spfInclude = spfInclude
    }

    /// The SPF mechanism users publish.
    public var spfMechanism: String {
        spfInclude.map { "include:\($0)" } ?? "a:\(hostname)"
    }
}
