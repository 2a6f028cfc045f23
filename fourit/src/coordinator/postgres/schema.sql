-- fourit's tables and functions, version 8 (2: fourit_claim_batch; 3: fourit_release_batch;
-- 6: the claim and the release written for the common case, the history trimmed on one
-- append in 8; 4 and 5 were steps towards it; 7: a manual claim forgets the winning claim's
-- id; 8: the job's own lease, slot '', in its row, so a claim is one row write and a release
-- one plus its history entry). Every operation of the coordinator is one statement (most
-- call one of the functions below), so it is atomic on the server and works behind a
-- transaction-pooling PgBouncer; no advisory lock anywhere. Times are the server's
-- (clock_timestamp(), in UTC milliseconds). LOGGED tables: they survive a crash and
-- replicate.

CREATE TABLE IF NOT EXISTS fourit_jobs (
  ns text NOT NULL, job text NOT NULL,
  tick bigint, fence bigint NOT NULL DEFAULT 0, node text, claim text,
  started bigint, finished bigint, outcome text, error text, released text,
  paused boolean NOT NULL DEFAULT false, paused_by text, paused_note text, paused_at bigint,
  paused_ticks bigint NOT NULL DEFAULT 0, paused_first bigint, paused_last bigint,
  PRIMARY KEY (ns, job)
);
-- 8: the job's own lease (slot '': a skip job's runs, a manual run that is not forced) in
-- the job's row: lease_run holds it until lease_expires. No index covers these columns, and
-- pages are filled to half, so a claim's and a release's update of the row stays on its page
-- (a HOT update: no index entry written).
ALTER TABLE fourit_jobs ADD COLUMN IF NOT EXISTS lease_run text,
  ADD COLUMN IF NOT EXISTS lease_expires bigint;
ALTER TABLE fourit_jobs SET (fillfactor = 50);
-- The leases of runs with a lease of their own (slot 't:<tick>': a job that allows overlap;
-- 'm:<tick>': a forced manual run, or any manual run of such a job).
CREATE TABLE IF NOT EXISTS fourit_leases (
  ns text NOT NULL, job text NOT NULL, slot text NOT NULL,
  run_id text NOT NULL, expires bigint NOT NULL,
  PRIMARY KEY (ns, job, slot)
);
CREATE TABLE IF NOT EXISTS fourit_history (
  id bigserial NOT NULL, ns text NOT NULL, job text NOT NULL,
  tick bigint NOT NULL, node text NOT NULL, outcome text NOT NULL, detail text,
  fence bigint, duration_ms bigint, delay_ms bigint
);
CREATE INDEX IF NOT EXISTS fourit_history_job ON fourit_history (ns, job, id);
-- 8: every read and trim of the history goes by (ns, job, id); the ids come from the
-- sequence, so an append writes one index entry, not two.
ALTER TABLE fourit_history DROP CONSTRAINT IF EXISTS fourit_history_pkey;
CREATE TABLE IF NOT EXISTS fourit_members (
  ns text NOT NULL, node text NOT NULL, heartbeat bigint NOT NULL, clock_offset bigint,
  PRIMARY KEY (ns, node)
);
CREATE TABLE IF NOT EXISTS fourit_defs (
  ns text NOT NULL, job text NOT NULL, node text NOT NULL, line text NOT NULL,
  PRIMARY KEY (ns, job, node)
);
CREATE TABLE IF NOT EXISTS fourit_manual (
  ns text NOT NULL, job text NOT NULL, id text NOT NULL, record text NOT NULL,
  requested bigint NOT NULL,
  PRIMARY KEY (ns, job, id)
);

CREATE OR REPLACE FUNCTION fourit_now() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- 8: a live lease of slot '' moves into its job's row (an expired one holds nothing).
INSERT INTO fourit_jobs (ns, job) SELECT ns, job FROM fourit_leases WHERE slot = ''
  ON CONFLICT DO NOTHING;
UPDATE fourit_jobs j SET lease_run = l.run_id, lease_expires = l.expires FROM fourit_leases l
  WHERE l.ns = j.ns AND l.job = j.job AND l.slot = '' AND l.expires > fourit_now();
DELETE FROM fourit_leases WHERE slot = '';

-- Appends to a job's history. The oldest entries beyond the last p_cap are trimmed on one
-- append in eight (by the new entry's id), so most appends are one insert: a job keeps p_cap
-- entries and a few more, and every read asks for at most p_cap.
CREATE OR REPLACE FUNCTION fourit_record(p_ns text, p_job text, p_tick bigint, p_node text,
  p_outcome text, p_detail text, p_fence bigint, p_duration bigint, p_delay bigint,
  p_cap integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_id bigint;
BEGIN
  INSERT INTO fourit_history (ns, job, tick, node, outcome, detail, fence, duration_ms, delay_ms)
  VALUES (p_ns, p_job, p_tick, p_node, p_outcome, p_detail, p_fence, p_duration, p_delay)
  RETURNING id INTO v_id;
  IF v_id % 8 = 0 THEN
    DELETE FROM fourit_history WHERE ns = p_ns AND job = p_job AND id <= (
      SELECT id FROM fourit_history WHERE ns = p_ns AND job = p_job
      ORDER BY id DESC LIMIT 1 OFFSET p_cap);
  END IF;
END $$;

-- The live holder of a lease slot (an expired lease holds nothing; the next lease of the
-- slot overwrites it): slot '' in the job's row, the others in fourit_leases.
CREATE OR REPLACE FUNCTION fourit_holder(p_ns text, p_job text, p_slot text, p_now bigint)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT lease_run FROM fourit_jobs
  WHERE p_slot = '' AND ns = p_ns AND job = p_job AND lease_expires > p_now
  UNION ALL
  SELECT run_id FROM fourit_leases
  WHERE p_slot <> '' AND ns = p_ns AND job = p_job AND slot = p_slot AND expires > p_now
$$;

-- Claims ticks, the rule book's claim (rules/claim.rs: claim, resend) for each, in one transaction (one commit for the batch),
-- answered in order; each sees the effects of the earlier ones. code: 1 run (fence), 0
-- taken, 2 overlap (holder), 3 retry at at_ms, 4 early, 5 resumed (fence), 6 paused.
-- old_mark: the mark before, when it is older than the schedule's previous tick (the caller
-- records missed ticks). Decided ticks claimed under a handoff are announced with NOTIFY (on
-- commit). Written for the common case: the job's row read without a lock (everything a skip
-- job's claim decides on is in it), then, if the claim changes it, one update of the row on
-- the condition that it is the version read (its xmin); a row changed meanwhile is read and
-- decided again. A refused claim writes nothing (no WAL, no commit to flush).
CREATE OR REPLACE FUNCTION fourit_claim_batch(p_ns text, p_jobs text[], p_ticks bigint[],
  p_nodes text[], p_ttls bigint[], p_allows boolean[], p_preferred text[], p_handoffs bigint[],
  p_tolerance bigint, p_claims text[], p_previous bigint[], p_cap integer)
RETURNS TABLE (code integer, fence bigint, holder text, at_ms bigint, now_ms bigint,
  old_mark bigint) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  v_job text; v_tick bigint; v_node text; v_claim text; v_slot text; v_run text;
  v_detail text;
  i integer := 1;
BEGIN
  WHILE i <= coalesce(array_length(p_jobs, 1), 0) LOOP
    v_job := p_jobs[i]; v_tick := p_ticks[i]; v_node := p_nodes[i]; v_claim := p_claims[i];
    -- A run's own lease (fourit_leases), or NULL for the job's lease (its row).
    v_slot := CASE WHEN p_allows[i] THEN 't:' || v_tick END;
    code := NULL; fence := NULL; holder := NULL; at_ms := NULL; old_mark := NULL;
    now_ms := fourit_now();
    SELECT j.*, j.xmin AS seen INTO r FROM fourit_jobs j WHERE ns = p_ns AND job = v_job;
    IF NOT FOUND THEN
      INSERT INTO fourit_jobs (ns, job) VALUES (p_ns, v_job) ON CONFLICT DO NOTHING;
      CONTINUE;
    END IF;
    IF r.tick IS NOT NULL AND r.tick >= v_tick THEN
      code := 0;
      -- This very claim sent again after its answer was lost: the same run, its lease
      -- taken again if it expired meanwhile.
      IF r.tick = v_tick AND r.claim = v_claim AND r.fence > 0 THEN
        v_run := v_node || ':' || r.fence || ':' || v_tick;
        IF v_slot IS NULL THEN
          holder := CASE WHEN r.lease_expires > now_ms THEN r.lease_run END;
          IF holder IS NULL THEN
            UPDATE fourit_jobs j SET lease_run = v_run, lease_expires = now_ms + p_ttls[i]
              WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
            CONTINUE WHEN NOT FOUND;
            holder := v_run;
          END IF;
        ELSE
          PERFORM 1 FROM fourit_jobs j
            WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen FOR UPDATE;
          CONTINUE WHEN NOT FOUND;
          SELECT l.run_id INTO holder FROM fourit_leases l
            WHERE l.ns = p_ns AND l.job = v_job AND l.slot = v_slot AND l.expires > now_ms;
          IF holder IS NULL THEN
            INSERT INTO fourit_leases VALUES (p_ns, v_job, v_slot, v_run, now_ms + p_ttls[i])
              ON CONFLICT (ns, job, slot) DO UPDATE SET run_id = excluded.run_id,
                expires = excluded.expires;
            holder := v_run;
          END IF;
        END IF;
        IF holder = v_run THEN
          code := 5; fence := r.fence;
        END IF;
        holder := NULL;
      END IF;
    -- A tick in the server's future is refused, recording nothing.
    ELSIF v_tick > now_ms + p_tolerance THEN
      code := 4;
    -- The preferred member has the tick to itself until tick + handoff.
    ELSIF p_preferred[i] IS NOT NULL AND p_preferred[i] <> v_node
        AND now_ms < v_tick + p_handoffs[i] THEN
      code := 3; at_ms := v_tick + p_handoffs[i];
    ELSE
      IF r.tick IS NOT NULL AND p_previous[i] IS NOT NULL AND r.tick < p_previous[i] THEN
        old_mark := r.tick;
      END IF;
      IF r.paused THEN
        UPDATE fourit_jobs j SET tick = v_tick, paused_ticks = j.paused_ticks + 1,
          paused_last = v_tick,
          paused_first = CASE WHEN j.paused_ticks = 0 THEN v_tick ELSE j.paused_first END
          WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
        CONTINUE WHEN NOT FOUND;
        IF r.paused_ticks = 0 THEN
          v_detail := 'paused by ' || coalesce(r.paused_by, '');
          IF coalesce(r.paused_note, '') <> '' THEN
            v_detail := v_detail || ': ' || r.paused_note;
          END IF;
          PERFORM fourit_record(p_ns, v_job, v_tick, v_node, 'paused', v_detail, NULL, NULL,
            NULL, p_cap);
        END IF;
        code := 6;
      ELSE
        IF v_slot IS NULL AND r.lease_expires > now_ms THEN
          holder := r.lease_run;
        END IF;
        IF holder IS NOT NULL THEN
          UPDATE fourit_jobs j SET tick = v_tick
            WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
          CONTINUE WHEN NOT FOUND;
          PERFORM fourit_record(p_ns, v_job, v_tick, v_node, 'overlap', holder, NULL, NULL,
            NULL, p_cap);
          code := 2;
        ELSE
          fence := r.fence + 1;
          v_run := v_node || ':' || fence || ':' || v_tick;
          IF v_slot IS NULL THEN
            UPDATE fourit_jobs j SET tick = v_tick, fence = r.fence + 1, node = v_node,
              claim = v_claim, started = now_ms, finished = NULL, outcome = 'running',
              error = NULL, lease_run = v_run, lease_expires = now_ms + p_ttls[i]
              WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
            CONTINUE WHEN NOT FOUND;
          ELSE
            UPDATE fourit_jobs j SET tick = v_tick, fence = r.fence + 1, node = v_node,
              claim = v_claim, started = now_ms, finished = NULL, outcome = 'running',
              error = NULL
              WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
            CONTINUE WHEN NOT FOUND;
            INSERT INTO fourit_leases VALUES (p_ns, v_job, v_slot, v_run, now_ms + p_ttls[i])
              ON CONFLICT (ns, job, slot) DO UPDATE SET run_id = excluded.run_id,
                expires = excluded.expires;
          END IF;
          code := 1;
        END IF;
      END IF;
      IF p_preferred[i] IS NOT NULL THEN
        PERFORM pg_notify('fourit_claims', p_ns || E'\t' || v_tick || ' ' || v_job);
      END IF;
    END IF;
    RETURN NEXT;
    i := i + 1;
  END LOOP;
END $$;

-- One claim (fourit_claim_batch of one), for operators and older fourit processes.
CREATE OR REPLACE FUNCTION fourit_claim(p_ns text, p_job text, p_tick bigint, p_node text,
  p_ttl bigint, p_allow boolean, p_preferred text, p_handoff bigint, p_tolerance bigint,
  p_claim text, p_previous bigint, p_cap integer,
  OUT code integer, OUT fence bigint, OUT holder text, OUT at_ms bigint, OUT now_ms bigint,
  OUT old_mark bigint) LANGUAGE sql AS $$
  SELECT * FROM fourit_claim_batch(p_ns, ARRAY[p_job], ARRAY[p_tick], ARRAY[p_node],
    ARRAY[p_ttl], ARRAY[p_allow], ARRAY[p_preferred], ARRAY[p_handoff], p_tolerance,
    ARRAY[p_claim], ARRAY[p_previous], p_cap)
$$;

-- Ends runs, the rule book's release (rules/lease.rs: release) for each, in one transaction (one commit), answered in
-- order: whether each lease was still the run's. The job's lease (slot '') is in its row: the
-- row read without a lock, then one update of it on the condition that it is the version read
-- (else read and decided again), and the history entry. A run's own lease (fourit_leases) is
-- deleted under the row's lock.
CREATE OR REPLACE FUNCTION fourit_release_batch(p_ns text, p_jobs text[], p_slots text[],
  p_runs text[], p_ticks bigint[], p_nodes text[], p_fences bigint[], p_outcomes text[],
  p_errors text[], p_durations bigint[], p_delays bigint[], p_cap integer)
RETURNS TABLE (held boolean) LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_job text; v_run text; v_now bigint; v_expires bigint; v_mine boolean;
  i integer := 1;
BEGIN
  WHILE i <= coalesce(array_length(p_jobs, 1), 0) LOOP
    v_job := p_jobs[i]; v_run := p_runs[i];
    v_now := fourit_now();
    SELECT j.*, j.xmin AS seen INTO r FROM fourit_jobs j WHERE ns = p_ns AND job = v_job;
    IF NOT FOUND THEN
      INSERT INTO fourit_jobs (ns, job) VALUES (p_ns, v_job) ON CONFLICT DO NOTHING;
      CONTINUE;
    END IF;
    -- The run's own lease goes, live or expired; it was held if it was live.
    IF p_slots[i] = '' THEN
      v_mine := r.lease_run IS NOT DISTINCT FROM v_run;
      held := v_mine AND r.lease_expires > v_now;
    ELSE
      PERFORM 1 FROM fourit_jobs j
        WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen FOR UPDATE;
      CONTINUE WHEN NOT FOUND;
      v_mine := false;
      DELETE FROM fourit_leases WHERE ns = p_ns AND job = v_job AND slot = p_slots[i]
        AND run_id = v_run RETURNING expires INTO v_expires;
      held := FOUND AND v_expires > v_now;
    END IF;
    -- Sent again after a lost answer: already done.
    IF held OR r.released IS DISTINCT FROM v_run THEN
      IF r.fence = p_fences[i] THEN
        UPDATE fourit_jobs j SET claim = NULL, released = v_run, finished = v_now,
          outcome = p_outcomes[i], error = p_errors[i],
          lease_run = CASE WHEN v_mine THEN NULL ELSE j.lease_run END,
          lease_expires = CASE WHEN v_mine THEN NULL ELSE j.lease_expires END
          WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
        CONTINUE WHEN NOT FOUND;
      ELSIF v_mine THEN
        UPDATE fourit_jobs j SET lease_run = NULL, lease_expires = NULL
          WHERE j.ns = p_ns AND j.job = v_job AND j.xmin = r.seen;
        CONTINUE WHEN NOT FOUND;
      END IF;
      PERFORM fourit_record(p_ns, v_job, p_ticks[i], p_nodes[i], p_outcomes[i], p_errors[i],
        p_fences[i], p_durations[i], p_delays[i], p_cap);
    ELSE
      held := true;
    END IF;
    RETURN NEXT;
    i := i + 1;
  END LOOP;
END $$;

-- One release (fourit_release_batch of one), for operators and older fourit processes.
CREATE OR REPLACE FUNCTION fourit_release(p_ns text, p_job text, p_slot text, p_run text,
  p_tick bigint, p_node text, p_fence bigint, p_outcome text, p_error text,
  p_duration bigint, p_delay bigint, p_cap integer) RETURNS boolean LANGUAGE sql AS $$
  SELECT held FROM fourit_release_batch(p_ns, ARRAY[p_job], ARRAY[p_slot], ARRAY[p_run],
    ARRAY[p_tick], ARRAY[p_node], ARRAY[p_fence], ARRAY[p_outcome], ARRAY[p_error],
    ARRAY[p_duration], ARRAY[p_delay], p_cap)
$$;

-- The rule book's heartbeat (rules/members.rs: heartbeat): marks a member alive, keeps its
-- clock offset, forgets silent members; answers the time
-- (µs), the members and whether manual runs wait.
CREATE OR REPLACE FUNCTION fourit_heartbeat(p_ns text, p_node text, p_stale bigint,
  p_offset bigint, OUT now_us bigint, OUT members text[], OUT manual_pending boolean)
LANGUAGE plpgsql AS $$
DECLARE v_now bigint;
BEGIN
  now_us := floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
  v_now := now_us / 1000;
  INSERT INTO fourit_members (ns, node, heartbeat, clock_offset)
    VALUES (p_ns, p_node, v_now, p_offset)
    ON CONFLICT (ns, node) DO UPDATE SET heartbeat = excluded.heartbeat,
      clock_offset = coalesce(excluded.clock_offset, fourit_members.clock_offset);
  DELETE FROM fourit_members WHERE ns = p_ns AND heartbeat < v_now - p_stale;
  SELECT coalesce(array_agg(node ORDER BY node), '{}') INTO members
    FROM fourit_members WHERE ns = p_ns;
  SELECT EXISTS (SELECT 1 FROM fourit_manual WHERE ns = p_ns AND record LIKE E'%\tpending')
    INTO manual_pending;
END $$;

-- Takes a manual run for one member, once: the rule book's manual claim (rules/manual.rs:
-- claim). code: 1 run (fence), 2 overlap
-- (holder), 0 taken.
CREATE OR REPLACE FUNCTION fourit_claim_manual(p_ns text, p_job text, p_id text, p_node text,
  p_ttl bigint, p_allow boolean, p_cap integer,
  OUT code integer, OUT fence bigint, OUT holder text, OUT requested bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_record text;
  v_parts text[];
  v_base text;
  v_own boolean;
  v_now bigint := fourit_now();
  v_run text;
BEGIN
  SELECT record INTO v_record FROM fourit_manual
    WHERE ns = p_ns AND job = p_job AND id = p_id FOR UPDATE;
  IF v_record IS NULL THEN code := 0; RETURN; END IF;
  v_parts := string_to_array(v_record, E'\t');
  IF v_parts[4] IS DISTINCT FROM 'pending' THEN code := 0; RETURN; END IF;
  requested := v_parts[2]::bigint;
  v_base := v_parts[1] || E'\t' || v_parts[2] || E'\t' || v_parts[3] || E'\t';
  v_own := p_allow OR v_parts[3] = '1';
  INSERT INTO fourit_jobs (ns, job) VALUES (p_ns, p_job) ON CONFLICT DO NOTHING;
  PERFORM 1 FROM fourit_jobs WHERE ns = p_ns AND job = p_job FOR UPDATE;
  IF NOT v_own THEN
    holder := fourit_holder(p_ns, p_job, '', v_now);
    IF holder IS NOT NULL THEN
      UPDATE fourit_manual SET record = v_base || 'skipped' || E'\t' || holder
        WHERE ns = p_ns AND job = p_job AND id = p_id;
      PERFORM fourit_record(p_ns, p_job, requested, p_node, 'overlap',
        'manual run asked by ' || v_parts[1] || ' skipped: ' || holder, NULL, NULL, NULL, p_cap);
      code := 2; RETURN;
    END IF;
  END IF;
  -- The job's lease in its row, a lease of its own in fourit_leases.
  UPDATE fourit_jobs SET fence = fourit_jobs.fence + 1, claim = NULL, node = p_node,
    started = v_now, finished = NULL, outcome = 'running', error = NULL,
    lease_run = CASE WHEN v_own THEN fourit_jobs.lease_run
      ELSE p_node || ':' || (fourit_jobs.fence + 1) || ':' || requested END,
    lease_expires = CASE WHEN v_own THEN fourit_jobs.lease_expires ELSE v_now + p_ttl END
    WHERE ns = p_ns AND job = p_job RETURNING fourit_jobs.fence INTO fence;
  v_run := p_node || ':' || fence || ':' || requested;
  IF v_own THEN
    INSERT INTO fourit_leases VALUES (p_ns, p_job, 'm:' || requested, v_run, v_now + p_ttl)
      ON CONFLICT (ns, job, slot) DO UPDATE SET run_id = excluded.run_id,
        expires = excluded.expires;
  END IF;
  UPDATE fourit_manual SET record = v_base || 'started' || E'\t' || p_node || E'\t' || fence
    WHERE ns = p_ns AND job = p_job AND id = p_id;
  PERFORM fourit_record(p_ns, p_job, requested, p_node, 'manual', 'asked by ' || v_parts[1],
    fence, NULL, NULL, p_cap);
  code := 1;
END $$;

-- Resumes a paused job: the rule book's resume (rules/pause.rs: resume); answers the pause
-- it ended (no row if none).
CREATE OR REPLACE FUNCTION fourit_resume(p_ns text, p_job text, p_by text, p_cap integer,
  OUT by_whom text, OUT note text, OUT since bigint, OUT ticks bigint, OUT first_tick bigint,
  OUT last_tick bigint) RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE r fourit_jobs%ROWTYPE;
BEGIN
  SELECT * INTO r FROM fourit_jobs WHERE ns = p_ns AND job = p_job FOR UPDATE;
  IF NOT FOUND OR NOT r.paused THEN RETURN; END IF;
  UPDATE fourit_jobs SET paused = false WHERE ns = p_ns AND job = p_job;
  IF r.paused_ticks > 0 THEN
    PERFORM fourit_record(p_ns, p_job, r.paused_last, p_by, 'resumed',
      r.paused_ticks || ' ticks paused, ' || r.paused_first || ' to ' || r.paused_last ||
      ' (ms); paused by ' || coalesce(r.paused_by, '') || ', resumed by ' || p_by,
      NULL, NULL, NULL, p_cap);
  END IF;
  by_whom := r.paused_by; note := r.paused_note; since := r.paused_at; ticks := r.paused_ticks;
  first_tick := r.paused_first; last_tick := r.paused_last;
  RETURN NEXT;
END $$;

-- Removes a job: its state, leases, history, registrations and manual requests.
CREATE OR REPLACE FUNCTION fourit_remove(p_ns text, p_job text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM fourit_jobs WHERE ns = p_ns AND job = p_job;
  DELETE FROM fourit_leases WHERE ns = p_ns AND job = p_job;
  DELETE FROM fourit_history WHERE ns = p_ns AND job = p_job;
  DELETE FROM fourit_defs WHERE ns = p_ns AND job = p_job;
  DELETE FROM fourit_manual WHERE ns = p_ns AND job = p_job;
END $$;
