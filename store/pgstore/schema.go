package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/store"
)

// migrations are applied in order; never edit one that has shipped, add a
// new one instead. Their index+1 is the schema version.
//
// The schema is the SQLite store's at its version 6, in PostgreSQL's
// types: times are Unix milliseconds (BIGINT), like there; text is
// compared and ordered bytewise (COLLATE "C"), as SQLite and Go do,
// whatever the database's locale. Unlike SQLite's, it holds uniqueness
// that concurrent nodes could otherwise break: one account per look-alike
// skeleton, one last-resort key package per device and suite.
var migrations = []string{
	// 1: the schema of SQLite's version 6.
	`
CREATE TABLE accounts (
	username            TEXT COLLATE "C" PRIMARY KEY,
	created             BIGINT NOT NULL,
	skeleton            TEXT COLLATE "C" NOT NULL,
	account_key         BYTEA,
	device_list         BYTEA,
	device_list_version BIGINT NOT NULL DEFAULT 0,
	kt_version          BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX accounts_skeleton ON accounts (skeleton);
CREATE INDEX accounts_kt_pending ON accounts (username)
	WHERE kt_version <> CASE WHEN device_list IS NULL THEN 0 ELSE device_list_version END;
CREATE TABLE devices (
	id                TEXT COLLATE "C" PRIMARY KEY,
	username          TEXT COLLATE "C" NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
	public_key        BYTEA NOT NULL,
	created           BIGINT NOT NULL,
	inbox_head        BIGINT NOT NULL DEFAULT 0,
	link_confirmation BYTEA,
	last_seen         BIGINT NOT NULL DEFAULT 0,
	CONSTRAINT devices_public_key UNIQUE (public_key)
);
CREATE INDEX devices_username ON devices (username);
CREATE TABLE invites (
	code    TEXT COLLATE "C" PRIMARY KEY,
	expires BIGINT NOT NULL
);
CREATE TABLE links (
	username   TEXT COLLATE "C" NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
	code       TEXT COLLATE "C" NOT NULL,
	public_key BYTEA NOT NULL,
	expires    BIGINT NOT NULL,
	mls_key    BYTEA,
	link_mac   BYTEA,
	PRIMARY KEY (username, code)
);
CREATE TABLE key_packages (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id   TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	suite       INTEGER NOT NULL,
	last_resort BOOLEAN NOT NULL,
	ref         BYTEA NOT NULL,
	data        BYTEA NOT NULL
);
CREATE INDEX key_packages_device ON key_packages (device_id, suite, last_resort, id);
CREATE UNIQUE INDEX key_packages_last_resort ON key_packages (device_id, suite) WHERE last_resort;
CREATE TABLE conversations (
	id       BYTEA PRIMARY KEY,
	epoch    BIGINT NOT NULL,
	head_seq BIGINT NOT NULL,
	created  BIGINT NOT NULL
);
CREATE TABLE members (
	conversation_id BYTEA NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	device_id       TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	cursor          BIGINT NOT NULL,
	until_seq       BIGINT,
	PRIMARY KEY (conversation_id, device_id)
);
CREATE INDEX members_device ON members (device_id);
CREATE TABLE messages (
	conversation_id BYTEA NOT NULL,
	seq             BIGINT NOT NULL,
	id              BYTEA NOT NULL,
	epoch           BIGINT NOT NULL,
	kind            SMALLINT NOT NULL,
	sender          TEXT COLLATE "C" NOT NULL,
	payload         BYTEA NOT NULL,
	stored          BIGINT NOT NULL,
	PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX messages_stored ON messages (stored);
CREATE TABLE message_ids (
	conversation_id BYTEA NOT NULL,
	id              BYTEA NOT NULL,
	seq             BIGINT NOT NULL,
	epoch           BIGINT NOT NULL,
	kind            SMALLINT NOT NULL,
	sender          TEXT COLLATE "C" NOT NULL,
	stored          BIGINT NOT NULL,
	PRIMARY KEY (conversation_id, id)
);
CREATE INDEX message_ids_stored ON message_ids (stored);
CREATE TABLE epoch_commits (
	conversation_id BYTEA NOT NULL,
	epoch           BIGINT NOT NULL,
	seq             BIGINT NOT NULL,
	id              BYTEA NOT NULL,
	sender          TEXT COLLATE "C" NOT NULL,
	payload         BYTEA NOT NULL,
	stored          BIGINT NOT NULL,
	PRIMARY KEY (conversation_id, epoch)
);
CREATE INDEX epoch_commits_stored ON epoch_commits (stored);
CREATE TABLE inbox (
	device_id       TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	seq             BIGINT NOT NULL,
	id              BYTEA NOT NULL,
	conversation_id BYTEA NOT NULL,
	epoch           BIGINT NOT NULL,
	kind            SMALLINT NOT NULL,
	sender          TEXT COLLATE "C" NOT NULL,
	payload         BYTEA NOT NULL,
	stored          BIGINT NOT NULL,
	PRIMARY KEY (device_id, seq)
);
CREATE INDEX inbox_stored ON inbox (stored);
CREATE TABLE blocks (
	username TEXT COLLATE "C" NOT NULL REFERENCES accounts (username),
	blocked  TEXT COLLATE "C" NOT NULL REFERENCES accounts (username),
	PRIMARY KEY (username, blocked)
);
CREATE TABLE privacy (
	username      TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (username),
	group_invites SMALLINT NOT NULL
);
CREATE TABLE kt_epochs (
	epoch   BIGINT PRIMARY KEY,
	record  BYTEA NOT NULL,
	changes BYTEA NOT NULL
);
CREATE TABLE kt_labels (
	label     TEXT COLLATE "C" PRIMARY KEY,
	idx       BYTEA NOT NULL,
	vrf_proof BYTEA NOT NULL,
	leaf      BYTEA NOT NULL,
	epoch     BIGINT NOT NULL,
	version   BIGINT NOT NULL
);
CREATE TABLE kt_versions (
	label   TEXT COLLATE "C" NOT NULL,
	epoch   BIGINT NOT NULL,
	version BIGINT NOT NULL,
	prev    BYTEA NOT NULL,
	opening BYTEA NOT NULL,
	value   BYTEA NOT NULL,
	PRIMARY KEY (label, epoch)
);
CREATE TABLE kt_published (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	note BYTEA NOT NULL
);
CREATE TABLE legal_requests (
	id              TEXT COLLATE "C" PRIMARY KEY,
	recorded        BIGINT NOT NULL,
	data            BYTEA NOT NULL,
	preserved_until BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE legal_log (
	n      BIGINT PRIMARY KEY,
	record BYTEA NOT NULL
);
`,
	// 2: disappearing messages (SQLite's version 7).
	`
CREATE TABLE disappearing (
	conversation_id BYTEA NOT NULL,
	seq             BIGINT NOT NULL,
	id              BYTEA NOT NULL,
	expires         BIGINT NOT NULL, -- unix seconds
	PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX disappearing_expires ON disappearing (expires);
`,
	// 3: an application message or proposal appended, and an Ack, each in
	// one statement (one round trip, committed on its own): see
	// groupcommit.go and Ack. Status codes are the appendStatus and
	// ackStatus constants. A VOLATILE PL/pgSQL function takes a new
	// snapshot for every statement, so in READ COMMITTED everything after
	// the FOR UPDATE sees what was committed before the lock was granted,
	// as the separate statements of a transaction did.
	`
CREATE FUNCTION parley_append_message(p_conv BYTEA, p_id BYTEA, p_sender TEXT, p_epoch BIGINT, p_kind SMALLINT,
	p_payload BYTEA, p_now BIGINT, p_expires BIGINT,
	OUT r_status SMALLINT, OUT r_seq BIGINT, OUT r_epoch BIGINT, OUT r_dup_epoch BIGINT, OUT r_dup_kind SMALLINT,
	OUT r_dup_sender TEXT, OUT r_dup_stored BIGINT, OUT r_recipients TEXT[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	v_head  BIGINT;
	v_moved INTEGER;
	v_n     INTEGER;
BEGIN
	-- The conversation's row lock serialises appends across nodes.
	SELECT c.epoch, c.head_seq INTO r_epoch, v_head FROM conversations c WHERE c.id = p_conv FOR UPDATE;
	IF NOT FOUND THEN
		r_status := 1; RETURN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = p_conv AND m.device_id = p_sender AND m.until_seq IS NULL) THEN
		r_status := 2; RETURN;
	END IF;
	-- Idempotency: a message id already stored is not stored again.
	SELECT mi.seq, mi.epoch, mi.kind, mi.sender, mi.stored INTO r_seq, r_dup_epoch, r_dup_kind, r_dup_sender, r_dup_stored
		FROM message_ids mi WHERE mi.conversation_id = p_conv AND mi.id = p_id;
	IF FOUND THEN
		r_status := 3; RETURN;
	END IF;
	IF p_epoch > r_epoch THEN
		r_status := 4; RETURN;
	END IF;
	IF p_epoch < r_epoch AND p_kind = 2 THEN
		r_status := 5; RETURN;
	END IF;
	r_seq := v_head + 1;
	INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored)
		VALUES (p_conv, r_seq, p_id, p_epoch, p_kind, p_sender, p_payload, p_now);
	INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored)
		VALUES (p_conv, p_id, r_seq, p_epoch, p_kind, p_sender, p_now);
	IF p_expires IS NOT NULL THEN
		INSERT INTO disappearing (conversation_id, seq, id, expires) VALUES (p_conv, r_seq, p_id, p_expires);
	END IF;
	UPDATE conversations SET head_seq = r_seq WHERE id = p_conv AND head_seq = v_head;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	IF v_n <> 1 THEN
		RAISE EXCEPTION 'conversation changed while its row was locked (head %)', v_head;
	END IF;
	-- The sender has its own message: if it was caught up, it stays so.
	UPDATE members SET cursor = r_seq WHERE conversation_id = p_conv AND device_id = p_sender AND cursor = r_seq - 1;
	GET DIAGNOSTICS v_moved = ROW_COUNT;
	SELECT array_agg(m.device_id ORDER BY m.device_id) INTO r_recipients FROM members m
		WHERE m.conversation_id = p_conv AND (m.until_seq IS NULL OR m.until_seq = r_seq);
	-- Only the sender reading alone can move the oldest cursor here.
	IF v_moved > 0 AND cardinality(r_recipients) = 1 THEN
		DELETE FROM messages WHERE conversation_id = p_conv
			AND seq <= (SELECT MIN(m.cursor) FROM members m WHERE m.conversation_id = p_conv);
	END IF;
	r_status := 0;
END
$$;
CREATE FUNCTION parley_ack(p_conv BYTEA, p_device TEXT, p_seq BIGINT, OUT r_status SMALLINT, OUT r_head BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	v_cursor BIGINT;
	v_until  BIGINT;
BEGIN
	-- The member's row is locked first, on its own, so that the head read
	-- next is at least as new as any append that held it.
	SELECT m.cursor, m.until_seq INTO v_cursor, v_until FROM members m
		WHERE m.conversation_id = p_conv AND m.device_id = p_device FOR UPDATE;
	IF NOT FOUND THEN
		r_status := 1; RETURN;
	END IF;
	SELECT c.head_seq INTO r_head FROM conversations c WHERE c.id = p_conv;
	IF p_seq > r_head THEN
		r_status := 2; RETURN;
	END IF;
	r_status := 0;
	IF v_until IS NOT NULL AND p_seq >= v_until THEN
		-- A removed device that caught up leaves for good.
		DELETE FROM members WHERE conversation_id = p_conv AND device_id = p_device;
	ELSIF p_seq > v_cursor THEN
		UPDATE members SET cursor = p_seq WHERE conversation_id = p_conv AND device_id = p_device;
	ELSE
		RETURN; -- nothing moved: nothing to trim
	END IF;
	DELETE FROM messages WHERE conversation_id = p_conv
		AND seq <= (SELECT MIN(m.cursor) FROM members m WHERE m.conversation_id = p_conv);
END
$$;
`,
	// 4: membership changes waiting for the members' verdicts (SQLite's
	// version 8; store.Store.Verdict).
	`
CREATE TABLE pending_changes (
	conversation_id BYTEA NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	seq             BIGINT NOT NULL, -- the commit's
	commit_id       BYTEA NOT NULL,
	device_id       TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	removed         BOOLEAN NOT NULL, -- a removal, else an addition
	refuse          BOOLEAN,          -- the device's own verdict
	stored          BIGINT NOT NULL,
	PRIMARY KEY (conversation_id, seq, device_id)
);
CREATE INDEX pending_changes_commit ON pending_changes (conversation_id, commit_id);
CREATE INDEX pending_changes_device ON pending_changes (device_id);
CREATE INDEX pending_changes_stored ON pending_changes (stored);
CREATE TABLE pending_voters (
	conversation_id BYTEA NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	seq             BIGINT NOT NULL,
	device_id       TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	refuse          BOOLEAN, -- NULL until the verdict is given
	PRIMARY KEY (conversation_id, seq, device_id)
);
CREATE INDEX pending_voters_device ON pending_voters (device_id);
`,
	// 5: a commit appended in one statement (parley_append_commit), as
	// appendCommit describes. It replaces a transaction of ten or more
	// round trips (appendTx and applyDelta, Go code until this migration)
	// that held the conversation's row lock across them. Status codes are the appendStatus constants; failures
	// found after the first write are raised with the SQLSTATEs in
	// commitErrors (the statement, and so everything it wrote, is rolled
	// back). As in migration 3, every statement of the VOLATILE function
	// takes a new snapshot, so everything after the FOR UPDATE sees what
	// was committed before the lock was granted.
	`
CREATE FUNCTION parley_append_commit(p_conv BYTEA, p_id BYTEA, p_sender TEXT, p_epoch BIGINT, p_payload BYTEA, p_now BIGINT,
	p_added TEXT[], p_removed TEXT[], p_welcome BYTEA,
	p_per_sender BIGINT, p_total BIGINT, p_per_sender_count BIGINT, p_total_count BIGINT,
	OUT r_status SMALLINT, OUT r_seq BIGINT, OUT r_epoch BIGINT, OUT r_dup_epoch BIGINT, OUT r_dup_kind SMALLINT,
	OUT r_dup_sender TEXT, OUT r_stored BIGINT, OUT r_win_id BYTEA, OUT r_win_payload BYTEA,
	OUT r_recipients TEXT[], OUT r_welcomed TEXT[], OUT r_inbox_seqs BIGINT[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	v_head      BIGINT;
	v_new_epoch BIGINT;
	v_locked    TEXT[];
	v_ids       TEXT[];
	v_users     TEXT[];
	v_sender_u  TEXT;
	v_others    TEXT[]; -- the named devices of another account than the sender's
	v_until     BIGINT;
	v_found     BOOLEAN;
	v_n         INTEGER;
	v_iseq      BIGINT;
	v_total     BIGINT;
	v_from      BIGINT;
	v_count     BIGINT;
	v_from_n    BIGINT;
	v_w         BIGINT;
	d           TEXT;
BEGIN
	-- The conversation's row lock serialises appends across nodes: the
	-- first commit for an epoch wins.
	SELECT c.epoch, c.head_seq INTO r_epoch, v_head FROM conversations c WHERE c.id = p_conv FOR UPDATE;
	IF NOT FOUND THEN
		r_status := 1; RETURN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = p_conv AND m.device_id = p_sender AND m.until_seq IS NULL) THEN
		r_status := 2; RETURN;
	END IF;
	-- Idempotency: a message id already stored is not stored again.
	SELECT mi.seq, mi.epoch, mi.kind, mi.sender, mi.stored INTO r_seq, r_dup_epoch, r_dup_kind, r_dup_sender, r_stored
		FROM message_ids mi WHERE mi.conversation_id = p_conv AND mi.id = p_id;
	IF FOUND THEN
		r_status := 3; RETURN;
	END IF;
	IF p_epoch > r_epoch THEN
		r_status := 4; RETURN;
	END IF;
	IF p_epoch < r_epoch THEN
		-- Handshake ordering (RFC 9750 §5.2): the winner of the epoch.
		SELECT e.seq, e.id, e.sender, e.payload, e.stored INTO r_seq, r_win_id, r_dup_sender, r_win_payload, r_stored
			FROM epoch_commits e WHERE e.conversation_id = p_conv AND e.epoch = p_epoch;
		IF FOUND THEN
			r_status := 6;
		ELSE
			r_status := 7; -- the epoch is over and its commit expired
		END IF;
		RETURN;
	END IF;
	r_seq := v_head + 1;
	v_new_epoch := r_epoch + 1;

	-- The membership change (applyDelta before). The added devices' rows
	-- are locked in id order (no deadlock between two commits), for the
	-- inbox room checked below.
	SELECT array_agg(l.id) INTO v_locked FROM (SELECT dv.id FROM devices dv WHERE dv.id = ANY(p_added) ORDER BY dv.id FOR UPDATE) l;
	SELECT array_agg(dv.id), array_agg(dv.username) INTO v_ids, v_users FROM devices dv
		WHERE dv.id = ANY(p_added || p_removed || ARRAY[p_sender]);
	v_sender_u := COALESCE(v_users[array_position(v_ids, p_sender)], '');
	SELECT COALESCE(array_agg(x.d), '{}') INTO v_others FROM unnest(p_added || p_removed) x(d)
		WHERE array_position(v_ids, x.d) IS NOT NULL AND v_users[array_position(v_ids, x.d)] <> v_sender_u;
	IF cardinality(v_others) > 0 THEN
		-- The voters: the active members now, but the committer's account
		-- and devices whose own addition is still pending.
		INSERT INTO pending_voters (conversation_id, seq, device_id)
			SELECT m.conversation_id, r_seq, m.device_id FROM members m JOIN devices dv ON dv.id = m.device_id
			WHERE m.conversation_id = p_conv AND m.until_seq IS NULL AND dv.username <> v_sender_u
			AND NOT EXISTS (SELECT 1 FROM pending_changes p WHERE p.conversation_id = m.conversation_id AND p.device_id = m.device_id AND NOT p.removed);
	END IF;
	FOREACH d IN ARRAY p_added LOOP
		IF v_locked IS NULL OR NOT d = ANY(v_locked) THEN
			RAISE EXCEPTION USING ERRCODE = 'PR001', MESSAGE = format('added device "%s"', d);
		END IF;
		SELECT m.until_seq INTO v_until FROM members m WHERE m.conversation_id = p_conv AND m.device_id = d;
		v_found := FOUND;
		IF v_found AND v_until IS NULL THEN
			-- A device whose removal is pending, added again: it stays the
			-- member it is and its removal is dropped.
			DELETE FROM pending_changes WHERE conversation_id = p_conv AND device_id = d AND removed;
			GET DIAGNOSTICS v_n = ROW_COUNT;
			IF v_n > 0 THEN
				CONTINUE;
			END IF;
			-- A device that refused the Welcome of its pending addition may
			-- be added again; its cursor starts anew.
			DELETE FROM pending_changes WHERE conversation_id = p_conv AND device_id = d AND NOT removed AND refuse;
			GET DIAGNOSTICS v_n = ROW_COUNT;
			IF v_n = 0 THEN
				RAISE EXCEPTION USING ERRCODE = 'PR002', MESSAGE = format('added device "%s" is already a member', d);
			END IF;
			UPDATE members SET cursor = r_seq WHERE conversation_id = p_conv AND device_id = d;
		ELSIF v_found THEN
			UPDATE members SET cursor = r_seq, until_seq = NULL WHERE conversation_id = p_conv AND device_id = d;
		ELSE
			INSERT INTO members (conversation_id, device_id, cursor) VALUES (p_conv, d, r_seq);
		END IF;
		IF d = ANY(v_others) THEN
			DELETE FROM pending_voters WHERE conversation_id = p_conv AND seq = r_seq AND device_id = d;
			INSERT INTO pending_changes (conversation_id, seq, commit_id, device_id, removed, stored)
				VALUES (p_conv, r_seq, p_id, d, false, p_now);
		END IF;
	END LOOP;
	FOREACH d IN ARRAY p_removed LOOP
		IF array_position(v_ids, d) IS NULL THEN
			-- A device deleted from its account already left every
			-- conversation.
			CONTINUE;
		END IF;
		IF NOT EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = p_conv AND m.device_id = d AND m.until_seq IS NULL) THEN
			RAISE EXCEPTION USING ERRCODE = 'PR003', MESSAGE = format('removed device "%s"', d);
		END IF;
		IF d = ANY(v_others) THEN
			-- Pending until the verdicts: it stays an active member.
			DELETE FROM pending_voters WHERE conversation_id = p_conv AND seq = r_seq AND device_id = d;
			INSERT INTO pending_changes (conversation_id, seq, commit_id, device_id, removed, stored)
				VALUES (p_conv, r_seq, p_id, d, true, p_now);
			CONTINUE;
		END IF;
		UPDATE members SET until_seq = r_seq WHERE conversation_id = p_conv AND device_id = d;
	END LOOP;

	-- The epoch is the key: a second commit for it cannot be stored.
	INSERT INTO epoch_commits (conversation_id, epoch, seq, id, sender, payload, stored)
		VALUES (p_conv, p_epoch, r_seq, p_id, p_sender, p_payload, p_now);
	IF length(p_welcome) > 0 THEN
		IF p_per_sender > 0 OR p_total > 0 OR p_per_sender_count > 0 OR p_total_count > 0 THEN
			-- The inbox limits (checkInboxRoom before); the added devices'
			-- rows are locked, so two commits adding one device from
			-- different conversations are counted one after the other.
			v_w := length(p_welcome);
			FOREACH d IN ARRAY p_added LOOP
				SELECT COALESCE(SUM(length(i.payload)), 0)::bigint,
					COALESCE(SUM(CASE WHEN s.username = v_sender_u THEN length(i.payload) ELSE 0 END), 0)::bigint,
					COUNT(*), COALESCE(SUM(CASE WHEN s.username = v_sender_u THEN 1 ELSE 0 END), 0)::bigint
					INTO v_total, v_from, v_count, v_from_n
					FROM inbox i LEFT JOIN devices s ON s.id = i.sender WHERE i.device_id = d;
				IF p_per_sender_count > 0 AND v_from_n + 1 > p_per_sender_count THEN
					RAISE EXCEPTION USING ERRCODE = 'PR004', MESSAGE = format('device %s already holds %s invitations from this account (limit %s)', d, v_from_n, p_per_sender_count);
				END IF;
				IF p_total_count > 0 AND v_count + 1 > p_total_count THEN
					RAISE EXCEPTION USING ERRCODE = 'PR004', MESSAGE = format('device %s has %s unread invitations (limit %s)', d, v_count, p_total_count);
				END IF;
				IF p_per_sender > 0 AND v_from + v_w > p_per_sender THEN
					RAISE EXCEPTION USING ERRCODE = 'PR004', MESSAGE = format('device %s already holds %s bytes of invitations from this account (limit %s)', d, v_from, p_per_sender);
				END IF;
				IF p_total > 0 AND v_total + v_w > p_total THEN
					RAISE EXCEPTION USING ERRCODE = 'PR004', MESSAGE = format('device %s has %s bytes of unread invitations (limit %s)', d, v_total, p_total);
				END IF;
			END LOOP;
		END IF;
		r_welcomed := '{}';
		r_inbox_seqs := '{}';
		FOREACH d IN ARRAY p_added LOOP
			UPDATE devices SET inbox_head = inbox_head + 1 WHERE id = d RETURNING inbox_head INTO v_iseq;
			INSERT INTO inbox (device_id, seq, id, conversation_id, epoch, kind, sender, payload, stored)
				VALUES (d, v_iseq, p_id, p_conv, v_new_epoch, 4, p_sender, p_welcome, p_now);
			r_welcomed := r_welcomed || d;
			r_inbox_seqs := r_inbox_seqs || v_iseq;
		END LOOP;
	END IF;

	INSERT INTO messages (conversation_id, seq, id, epoch, kind, sender, payload, stored)
		VALUES (p_conv, r_seq, p_id, p_epoch, 1, p_sender, p_payload, p_now);
	INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored)
		VALUES (p_conv, p_id, r_seq, p_epoch, 1, p_sender, p_now);
	-- Conditional on what was read under the lock: were the lock ever not
	-- held, this would change nothing and the commit would fail rather
	-- than fork the log.
	UPDATE conversations SET epoch = v_new_epoch, head_seq = r_seq WHERE id = p_conv AND epoch = r_epoch AND head_seq = v_head;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	IF v_n <> 1 THEN
		RAISE EXCEPTION 'conversation changed while its row was locked (epoch %, head %)', r_epoch, v_head;
	END IF;
	-- The sender has its own message: if it was caught up, it stays so.
	UPDATE members SET cursor = r_seq WHERE conversation_id = p_conv AND device_id = p_sender AND cursor = r_seq - 1;
	-- A device that removed itself is now caught up with its removal and
	-- leaves.
	DELETE FROM members WHERE conversation_id = p_conv AND until_seq IS NOT NULL AND cursor >= until_seq;
	SELECT array_agg(m.device_id ORDER BY m.device_id) INTO r_recipients FROM members m
		WHERE m.conversation_id = p_conv AND (m.until_seq IS NULL OR m.until_seq = r_seq);
	-- A membership change can move the oldest cursor: trim.
	DELETE FROM messages WHERE conversation_id = p_conv
		AND seq <= (SELECT MIN(m.cursor) FROM members m WHERE m.conversation_id = p_conv);
	r_epoch := v_new_epoch;
	r_stored := p_now;
	r_status := 0;
END
$$;
`,
	// 6: at most store.MaxPendingRemovals pending removals per
	// conversation (capPendingRemovalsSQL).
	capPendingRemovalsSQL,
	// 7: rate-limit windows and slots shared by the nodes
	// (store.Store.CountLimit, AcquireSlot).
	// UNLOGGED: no WAL for a counter bumped on busy accounts' hot paths;
	// a crash empties it, which only resets the limits' windows.
	`
CREATE UNLOGGED TABLE limit_windows (
	key  TEXT COLLATE "C" PRIMARY KEY,
	ends BIGINT NOT NULL, -- Unix milliseconds
	used BIGINT NOT NULL
);
CREATE INDEX limit_windows_ends ON limit_windows (ends);
-- What nodes hold at once (store.Store.AcquireSlot), per node, under
-- a lease the node renews: a dead node's counts end with its lease.
CREATE UNLOGGED TABLE slots (
	key        TEXT COLLATE "C" NOT NULL,
	node       TEXT COLLATE "C" NOT NULL,
	n          BIGINT NOT NULL,
	lease_ends BIGINT NOT NULL, -- Unix milliseconds
	PRIMARY KEY (key, node)
);
CREATE INDEX slots_node ON slots (node);
`,
	// 8: idempotency records keyed by (first_sent, id, conversation_id)
	// (store.Append.FirstSent), as SQLite's migration 9 keys them. Keyed
	// by (conversation_id, id), every new record went to a random leaf
	// of a primary key index as large as the retention; the clients'
	// first-send times are about now, so new records are written side by
	// side at the index's right edge. Records from before keep first_sent
	// 0, which is also what a client that does not say sends, so their
	// retries are still duplicates. Rebuilding the primary key locks
	// message_ids for as long as it takes (appends wait). The two append
	// functions take the first-send time: their old signatures are
	// dropped, so every node must run a binary with this migration.
	// Built from migrations 3 and 5, it is appended by init below.
}

func init() { migrations = append(migrations, idempotencyByTime(migrations)) }

// Transaction advisory lock keys (pg_advisory_xact_lock): each serialises
// one thing across every node.
const (
	lockMigrate  = 0x7061726c65790001 // "parley" 1: schema migrations
	lockLegalLog = 0x7061726c65790002 // the legal log's next index
	lockKT       = 0x7061726c65790003 // the key transparency epochs
	lockSlots    = 0x70617273         // "pars": with a key's hash, one slot key (two-int form)
)

// migrate applies pending migrations, each in a transaction holding an
// advisory lock, so that nodes starting together apply each once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	for {
		done := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockMigrate)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY,
				applied BIGINT NOT NULL
			)`); err != nil {
				return err
			}
			var current int
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			if current > len(migrations) {
				return fmt.Errorf("database schema version %d is newer than this binary (%d)", current, len(migrations))
			}
			if current == len(migrations) {
				done = true
				return nil
			}
			v := current + 1
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, v, nowMilli()); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("pgstore: migrate: %w", unavailable(err))
		}
		if done {
			return nil
		}
	}
}

// capPendingRemovalsSQL is migration 6: a trigger, after each pending
// removal stored, settles the conversation's oldest pending removals past
// store.MaxPendingRemovals as store.PendingChange.Expire says (dropped:
// the device stays), with the voters that waited only on them, so that a
// member minting removals costs bounded storage (SQLite does the same in
// capPendingRemovals). It runs inside the commit's statement, under the
// conversation's row lock parley_append_commit holds. The voters of the
// commit being stored stay (its later changes still need them). A
// change of the bound needs a new migration; storetest.PendingBound
// checks it.
var capPendingRemovalsSQL = fmt.Sprintf(`
CREATE FUNCTION parley_cap_pending_removals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	WITH gone AS (
		DELETE FROM pending_changes p USING (
			SELECT seq, device_id FROM pending_changes
			WHERE conversation_id = NEW.conversation_id AND removed
			ORDER BY seq DESC, device_id DESC OFFSET %d) o
		WHERE p.conversation_id = NEW.conversation_id AND p.seq = o.seq AND p.device_id = o.device_id
		RETURNING p.seq, p.device_id)
	DELETE FROM pending_voters v
		WHERE v.conversation_id = NEW.conversation_id AND v.seq <> NEW.seq AND v.seq IN (SELECT seq FROM gone)
		AND NOT EXISTS (SELECT 1 FROM pending_changes p WHERE p.conversation_id = NEW.conversation_id AND p.seq = v.seq
			AND NOT EXISTS (SELECT 1 FROM gone g WHERE g.seq = p.seq AND g.device_id = p.device_id));
	RETURN NULL;
END
$$;
CREATE TRIGGER pending_removals_cap AFTER INSERT ON pending_changes
	FOR EACH ROW WHEN (NEW.removed) EXECUTE FUNCTION parley_cap_pending_removals();
`, store.MaxPendingRemovals)

// idempotencyByTime is migration 8, given the migrations before it. Its
// two functions are migrations 3 and 5's, rewritten by exact replacements (functionFrom, rewriteSQL)
// rather than pasted a second time, so that the 250 lines of SQL they
// share are read and reviewed once and the difference is the list of
// replacements below. Shipped migrations are never edited, so the text
// they are built from cannot change under them; rewriteSQL panics at
// init if a replacement does not apply exactly once.
func idempotencyByTime(shipped []string) string {
	return `
ALTER TABLE message_ids ADD COLUMN first_sent BIGINT NOT NULL DEFAULT 0; -- ms since 1970; 0: not given
ALTER TABLE message_ids DROP CONSTRAINT message_ids_pkey;
ALTER TABLE message_ids ADD PRIMARY KEY (first_sent, id, conversation_id);
ALTER TABLE disappearing ADD COLUMN first_sent BIGINT NOT NULL DEFAULT 0; -- its message_ids record's
DROP FUNCTION parley_append_message(BYTEA, BYTEA, TEXT, BIGINT, SMALLINT, BYTEA, BIGINT, BIGINT);
DROP FUNCTION parley_append_commit(BYTEA, BYTEA, TEXT, BIGINT, BYTEA, BIGINT, TEXT[], TEXT[], BYTEA, BIGINT, BIGINT, BIGINT, BIGINT);
` + rewriteSQL(functionFrom(shipped[2], "parley_append_message", "CREATE FUNCTION parley_ack("),
		"p_now BIGINT, p_expires BIGINT,", "p_now BIGINT, p_expires BIGINT, p_first_sent BIGINT,",
		idempotencyLookup, idempotencyLookupByTime,
		`INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored)
		VALUES (p_conv, p_id, r_seq, p_epoch, p_kind, p_sender, p_now);`,
		`INSERT INTO message_ids (first_sent, id, conversation_id, seq, epoch, kind, sender, stored)
		VALUES (p_first_sent, p_id, p_conv, r_seq, p_epoch, p_kind, p_sender, p_now);`,
		`INSERT INTO disappearing (conversation_id, seq, id, expires) VALUES (p_conv, r_seq, p_id, p_expires);`,
		`INSERT INTO disappearing (conversation_id, seq, id, first_sent, expires) VALUES (p_conv, r_seq, p_id, p_first_sent, p_expires);`,
	) + rewriteSQL(functionFrom(shipped[4], "parley_append_commit", ""),
		"p_total_count BIGINT,\n", "p_total_count BIGINT, p_first_sent BIGINT,\n",
		idempotencyLookup, idempotencyLookupByTime,
		`INSERT INTO message_ids (conversation_id, id, seq, epoch, kind, sender, stored)
		VALUES (p_conv, p_id, r_seq, p_epoch, 1, p_sender, p_now);`,
		`INSERT INTO message_ids (first_sent, id, conversation_id, seq, epoch, kind, sender, stored)
		VALUES (p_first_sent, p_id, p_conv, r_seq, p_epoch, 1, p_sender, p_now);`,
	)
}

// The idempotency look-up of migrations 3 and 5's functions, and of
// migration 8's: by the whole primary key.
const (
	idempotencyLookup       = `FROM message_ids mi WHERE mi.conversation_id = p_conv AND mi.id = p_id;`
	idempotencyLookupByTime = `FROM message_ids mi WHERE mi.first_sent = p_first_sent AND mi.id = p_id AND mi.conversation_id = p_conv;`
)

// functionFrom is the text of migration from "CREATE FUNCTION name(" up
// to end (the next statement's start; "" for the end of migration).
func functionFrom(migration, name, end string) string {
	start := "CREATE FUNCTION " + name + "("
	if strings.Count(migration, start) != 1 {
		panic(fmt.Sprintf("pgstore: migration 8: %q is not in the migration exactly once", start))
	}
	text := migration[strings.Index(migration, start):]
	if end != "" {
		if strings.Count(text, end) != 1 {
			panic(fmt.Sprintf("pgstore: migration 8: %q does not follow %s exactly once", end, name))
		}
		text = text[:strings.Index(text, end)]
	}
	return text
}

// rewriteSQL replaces, in text, each old of the pairs oldNew (old, new,
// old, new ...) by its new, and panics unless each old occurs in text
// exactly once: a replacement that did not apply would leave a function
// that still keys by the old key, which no error would show.
func rewriteSQL(text string, oldNew ...string) string {
	for i := 0; i < len(oldNew); i += 2 {
		if n := strings.Count(text, oldNew[i]); n != 1 {
			panic(fmt.Sprintf("pgstore: migration 8: %q occurs %d times in the function text, not once", oldNew[i], n))
		}
		text = strings.Replace(text, oldNew[i], oldNew[i+1], 1)
	}
	return text
}
