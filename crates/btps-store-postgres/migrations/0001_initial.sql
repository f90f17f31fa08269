-- btps-store-postgres schema, version 1. Times are Unix milliseconds (bigint): exact round
-- trips of `UnixMillis`, no time-zone conversion. JSON documents are `text`, not `jsonb`:
-- BTPS compares and signs member order, which jsonb does not keep.

-- Trust and agent records (PROTOCOL.md §7.1, §7.6). The typed columns serve queries and
-- operators; `record` is the record in the btps-node JSON layout, unknown members included,
-- and is what the store returns.
CREATE TABLE btps_trust (
  id text COLLATE "C" PRIMARY KEY,
  sender_id text NOT NULL,
  receiver_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('accepted','rejected','revoked','pending','blocked')),
  created_at bigint NOT NULL,
  decided_by text NOT NULL,
  decided_at bigint NOT NULL,
  expires_at bigint,
  retry_after_date bigint,
  public_key_base64 text NOT NULL,
  public_key_fingerprint text NOT NULL,
  privacy_type text NOT NULL,
  record text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX btps_trust_receiver ON btps_trust (lower(receiver_id), id);
CREATE INDEX btps_trust_sender ON btps_trust (lower(sender_id), id);

-- Hosted identities (§7.5).
CREATE TABLE btps_identity (
  id text COLLATE "C" PRIMARY KEY,
  identity_lc text NOT NULL UNIQUE,
  record text NOT NULL
);

-- Auth and refresh token hashes (§8.1). A consumed token keeps its row with `used_at` set
-- until it expires, so that reuse of a rotated refresh token is reported (§8.4).
CREATE TABLE btps_token (
  kind text NOT NULL CHECK (kind IN ('auth','refresh')),
  subject_key text NOT NULL,
  token_hash bytea NOT NULL,
  subject text NOT NULL,
  user_identity text NOT NULL,
  decrypt_by text NOT NULL,
  metadata text,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  used_at bigint,
  PRIMARY KEY (kind, subject_key, token_hash)
);
CREATE INDEX btps_token_expiry ON btps_token (expires_at);

-- The replay set (§10.2).
CREATE TABLE btps_seen_artifact (
  replay_key text NOT NULL,
  artifact_id text NOT NULL,
  signature text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (replay_key, artifact_id)
);
CREATE INDEX btps_seen_artifact_expiry ON btps_seen_artifact (expires_at);

-- Mailboxes (§3.5) and the outbox delivery state (§11.1). `seq` orders messages stored in
-- the same millisecond and is renewed when a message moves or is replaced.
CREATE SEQUENCE btps_message_seq;
CREATE TABLE btps_message (
  owner text NOT NULL,
  mailbox text NOT NULL CHECK (mailbox IN ('inbox','outbox','sentbox','drafts','trash')),
  id text NOT NULL,
  seq bigint NOT NULL,
  stored_at bigint NOT NULL,
  artifact text NOT NULL,
  digest bytea NOT NULL,
  seen_at bigint,
  delivery_status text CHECK (delivery_status IN ('pending','delivered','failed','cancelled')),
  attempts integer,
  next_attempt_at bigint,
  last_error text,
  finished_at bigint,
  PRIMARY KEY (owner, mailbox, id)
);
CREATE INDEX btps_message_order ON btps_message (owner, mailbox, stored_at, seq);
CREATE INDEX btps_message_due ON btps_message (next_attempt_at, seq)
  WHERE mailbox = 'outbox' AND delivery_status = 'pending';
