-- Scheduled send (`send_at` on POST /v1/messages): when the sender asked the message to go out, NULL for at once.
-- The queue rows are due then and the message's lifetime counts from then; this column records the request for
-- the API. Cancel and the bulk queue operations need no schema: they select pending recipients through the
-- existing recipients indexes (tenant + status, domain or message) and the queue's primary key.
ALTER TABLE messages ADD COLUMN send_at timestamptz;
