-- The due rows of each domain in order: lets a claim that leaves out busy domains find the other domains' work
-- without reading the busy domains' whole backlog (RelayDatabase.claim, docs/benchmarks.md).
CREATE INDEX queue_domain_due ON queue (domain, due_at);
