-- Core Janitor schema (the runner's database).
--
-- Reproduces the catalogue in golden/schema/python-schema.json (the schema
-- the upstream Python project builds).  Constraint and index names that
-- PostgreSQL generates depend on the order of the statements below, so keep
-- the order when editing: unnamed CHECK constraints become <table>_check,
-- <table>_check1, ...; unnamed indexes become <table>_<cols>_idx, and a second
-- identical unnamed index becomes ..._idx1.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- ---------------------------------------------------------------------------
-- Enums (label order matters: queue_bucket sorts in declaration order)
-- ---------------------------------------------------------------------------

CREATE TYPE vcs_type AS ENUM ('bzr', 'git', 'svn', 'mtn', 'hg', 'arch', 'cvs', 'darcs');
CREATE TYPE merge_proposal_status AS ENUM ('open', 'closed', 'merged', 'applied', 'abandoned', 'rejected');
CREATE TYPE review_policy AS ENUM ('not-required', 'required');
CREATE TYPE verdict AS ENUM ('approved', 'rejected', 'abstained');
CREATE TYPE publish_mode AS ENUM ('push', 'attempt-push', 'propose', 'build-only', 'push-derived', 'skip', 'bts');
CREATE TYPE publish_status AS ENUM ('unknown', 'blocked', 'needs-manual-review', 'rejected', 'approved', 'ignored');
CREATE TYPE change_set_state AS ENUM ('created', 'working', 'ready', 'publishing', 'done');
CREATE TYPE queue_bucket AS ENUM (
    'update-existing-mp', 'manual', 'control', 'hook', 'reschedule',
    'update-new-mp', 'missing-deps', 'default');

-- ---------------------------------------------------------------------------
-- Domains
-- ---------------------------------------------------------------------------

CREATE DOMAIN codebase_name AS text CHECK (VALUE SIMILAR TO '[a-z0-9][a-z0-9+-.]+');
CREATE DOMAIN suite_name AS text CHECK (VALUE SIMILAR TO '[a-z0-9][a-z0-9+-.]+');
CREATE DOMAIN campaign_name AS text CHECK (VALUE SIMILAR TO '[a-z0-9][a-z0-9+-.]+');

-- ---------------------------------------------------------------------------
-- Tables.  Creation order (tables, constraints, indexes) follows the upstream
-- schema: the object ids it implies decide the order in which foreign-key
-- actions fire on a DELETE and the planner's choice between equal indexes.
-- ---------------------------------------------------------------------------

CREATE TABLE codebase (
    name codebase_name,
    branch_url text,
    url text,
    branch text,
    subpath text,
    vcs_last_revision text,
    last_scanned timestamp without time zone,
    web_url text,
    vcs_type vcs_type,
    value integer,
    inactive boolean NOT NULL DEFAULT false,
    hostname text GENERATED ALWAYS AS (substring(branch_url, '.*://(?:[^/@]*@)?([^/]*)')) STORED,
    UNIQUE (branch_url, subpath),
    UNIQUE (name),
    CHECK (name IS NOT NULL OR branch_url IS NOT NULL),
    CHECK ((branch_url IS NULL) = (url IS NULL))
);
CREATE INDEX ON codebase (branch_url);
CREATE INDEX ON codebase (name);

CREATE TABLE merge_proposal (
    codebase text REFERENCES codebase (name) ON DELETE SET NULL,
    url text NOT NULL PRIMARY KEY,
    target_branch_url text,
    status merge_proposal_status,
    revision text,
    merged_by text,
    merged_at timestamp without time zone,
    last_scanned timestamp without time zone,
    can_be_merged boolean,
    rate_limit_bucket text
);
CREATE INDEX ON merge_proposal (revision);
CREATE INDEX ON merge_proposal (url);
CREATE INDEX ON merge_proposal (status);
CREATE INDEX ON merge_proposal (status, rate_limit_bucket);

-- result_tag and result_branch are only used as row types (run.result_tags, publish_ready).
CREATE TABLE result_tag (
    actual_name text,
    revision text NOT NULL
);

CREATE TABLE worker (
    name text NOT NULL UNIQUE,
    password text NOT NULL,
    link text
);

CREATE TABLE change_set (
    id text NOT NULL PRIMARY KEY,
    campaign campaign_name NOT NULL,
    state change_set_state NOT NULL DEFAULT 'created'
);
CREATE INDEX ON result_tag (revision);

CREATE TABLE run (
    id text NOT NULL PRIMARY KEY,
    command text,
    description text,
    start_time timestamp without time zone,
    finish_time timestamp without time zone,
    duration interval GENERATED ALWAYS AS (finish_time - start_time) STORED,
    result_code text NOT NULL,
    instigated_context text,
    context text,
    main_branch_revision text,
    revision text,
    result json,
    suite suite_name NOT NULL,
    vcs_type vcs_type,
    branch_url text,
    logfilenames text[] NOT NULL,
    publish_status publish_status NOT NULL DEFAULT 'unknown',
    value integer,
    worker text REFERENCES worker (name),
    worker_link text,
    result_tags result_tag[],
    subpath text,
    failure_stage text,
    failure_details json,
    target_branch_url text,
    failure_transient boolean,
    resume_from text REFERENCES run (id) ON DELETE SET NULL,
    change_set text NOT NULL REFERENCES change_set (id),
    codebase text NOT NULL REFERENCES codebase (name),
    CHECK (finish_time >= start_time),
    CHECK (result_code != 'nothing-new-to-do' OR resume_from IS NOT NULL),
    CHECK (publish_status != 'approved' OR revision IS NOT NULL)
);
CREATE INDEX ON run (codebase, suite, start_time DESC);
CREATE INDEX ON run (start_time);
CREATE INDEX ON run (suite, start_time);
CREATE INDEX ON run (codebase, suite);
CREATE INDEX ON run (suite);
CREATE INDEX ON run (result_code);
CREATE INDEX ON run (revision);
CREATE INDEX ON run (main_branch_revision);
CREATE INDEX ON run (change_set);
CREATE INDEX ON run (publish_status);

CREATE TABLE publish (
    id text NOT NULL,
    change_set text NOT NULL REFERENCES change_set (id),
    source_branch_url text,
    source_branch_web_url text,
    target_branch_url text NOT NULL,
    target_branch_web_url text,
    subpath text,
    branch_name text,
    main_branch_revision text,
    revision text,
    role text,
    mode publish_mode NOT NULL,
    merge_proposal_url text REFERENCES merge_proposal (url),
    result_code text NOT NULL,
    description text,
    requester text,
    codebase text REFERENCES codebase (name) ON DELETE SET NULL,
    timestamp timestamp without time zone DEFAULT now()
);
CREATE INDEX ON publish (revision);
CREATE INDEX ON publish (merge_proposal_url);
CREATE INDEX ON publish (timestamp);

CREATE TABLE queue (
    id serial NOT NULL,
    bucket queue_bucket NOT NULL DEFAULT 'default',
    codebase text NOT NULL REFERENCES codebase (name) ON DELETE CASCADE,
    branch_url text,
    suite suite_name NOT NULL,
    command text,
    priority bigint NOT NULL DEFAULT 0,
    context text,
    estimated_duration interval,
    refresh boolean DEFAULT false,
    requester text,
    change_set text REFERENCES change_set (id) ON DELETE CASCADE,
    CHECK (command != '')
);
CREATE UNIQUE INDEX queue_codebase_suite_set ON queue (codebase, suite, coalesce(change_set, ''));
CREATE INDEX ON queue (change_set);
CREATE INDEX ON queue (priority, id);
CREATE INDEX ON queue (bucket, priority, id);

CREATE TABLE branch_publish_policy (
    role text NOT NULL,
    mode publish_mode DEFAULT 'build-only',
    frequency_days integer,
    UNIQUE (role)
);

CREATE TABLE named_publish_policy (
    name text NOT NULL PRIMARY KEY,
    per_branch_policy branch_publish_policy[],
    rate_limit_bucket text
);

CREATE TABLE candidate (
    suite suite_name NOT NULL,
    context text,
    value integer,
    success_chance double precision,
    command text NOT NULL,
    publish_policy text REFERENCES named_publish_policy (name),
    change_set text REFERENCES change_set (id) ON DELETE CASCADE,
    codebase text NOT NULL,
    id serial PRIMARY KEY,
    CHECK (command != ''),
    CHECK (value > 0),
    CONSTRAINT candidate_codebase_fkey FOREIGN KEY (codebase) REFERENCES codebase (name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX candidate_codebase_suite_set ON candidate (codebase, suite, coalesce(change_set, ''));
CREATE INDEX ON candidate (suite);
CREATE INDEX ON candidate (change_set);

CREATE TABLE last_run (
    codebase text NOT NULL REFERENCES codebase (name),
    campaign campaign_name NOT NULL,
    last_run_id text REFERENCES run (id),
    last_effective_run_id text REFERENCES run (id),
    last_unabsorbed_run_id text REFERENCES run (id),
    UNIQUE (codebase, campaign)
);

CREATE TABLE new_result_branch (
    run_id text NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    role text NOT NULL,
    remote_name text,
    base_revision text,
    revision text,
    absorbed boolean DEFAULT false,
    UNIQUE (run_id, role)
);
CREATE INDEX ON new_result_branch (revision);
CREATE INDEX ON new_result_branch (absorbed);

CREATE TABLE site_session (
    id text NOT NULL PRIMARY KEY,
    timestamp timestamp without time zone NOT NULL DEFAULT now(),
    userinfo json
);

CREATE TABLE result_branch (
    role text NOT NULL,
    remote_name text NOT NULL,
    base_revision text NOT NULL,
    revision text NOT NULL
);

CREATE TYPE result_branch_with_policy AS (
    role text,
    remote_name text,
    base_revision text,
    revision text,
    mode publish_mode,
    frequency_days integer
);

CREATE TABLE review (
    run_id text NOT NULL REFERENCES run (id),
    comment text,
    reviewer text,
    verdict verdict NOT NULL,
    reviewed_at timestamp without time zone NOT NULL DEFAULT now()
);
CREATE INDEX ON review (run_id);
CREATE UNIQUE INDEX ON review (run_id, reviewer);

CREATE TABLE followup (
    origin text NOT NULL REFERENCES run (id),
    candidate integer REFERENCES candidate (id),
    UNIQUE (origin, candidate)
);

-- Indexes added later upstream; some duplicate earlier ones (hence the *_idx1 names).
CREATE INDEX ON codebase (inactive);
CREATE INDEX ON merge_proposal (can_be_merged);
CREATE INDEX ON run (suite, revision, publish_status);
CREATE INDEX ON run (codebase, suite, start_time, result_code);
CREATE INDEX ON run (start_time);
CREATE INDEX ON run (result_code);
CREATE INDEX ON run (change_set);
CREATE INDEX ON publish (merge_proposal_url);
CREATE INDEX ON publish (revision);
CREATE INDEX ON publish (timestamp);
CREATE INDEX ON queue (bucket);
CREATE INDEX ON queue (codebase);
CREATE INDEX ON queue (suite, priority, id);
CREATE UNIQUE INDEX ON candidate (codebase, suite, coalesce(change_set, ''));

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

-- One row per last_run row: the run each id points at (all of run's columns).
CREATE VIEW last_runs AS
    SELECT run.* FROM last_run INNER JOIN run ON last_run.last_run_id = run.id;

CREATE VIEW last_effective_runs AS
    SELECT run.* FROM last_run INNER JOIN run ON last_run.last_effective_run_id = run.id;

CREATE VIEW last_unabsorbed_runs AS
    SELECT run.* FROM last_run INNER JOIN run ON last_run.last_unabsorbed_run_id = run.id;

-- Candidates of a change set that have no usable effective result yet.
CREATE VIEW change_set_todo AS
    SELECT candidate.*
    FROM candidate
    WHERE candidate.change_set IS NOT NULL
      AND NOT EXISTS (
        SELECT FROM last_effective_runs
        WHERE last_effective_runs.change_set = candidate.change_set
          AND last_effective_runs.codebase = candidate.codebase
          AND last_effective_runs.suite = candidate.suite
          AND last_effective_runs.result_code IN ('success', 'nothing-to-do'));

-- Branches of a change set's last unabsorbed successful runs that are not absorbed yet.
CREATE VIEW change_set_unpublished AS
    SELECT last_unabsorbed_runs.change_set, last_unabsorbed_runs.id, new_result_branch.role
    FROM last_unabsorbed_runs
    INNER JOIN new_result_branch ON new_result_branch.run_id = last_unabsorbed_runs.id
    WHERE NOT coalesce(new_result_branch.absorbed, false)
      AND last_unabsorbed_runs.result_code = 'success';

CREATE VIEW queue_positions AS
    SELECT
        queue.id,
        queue.codebase,
        queue.suite,
        row_number() OVER (ORDER BY queue.bucket, queue.priority, queue.id) AS position,
        sum(queue.estimated_duration) OVER (ORDER BY queue.bucket, queue.priority, queue.id)
            - coalesce(queue.estimated_duration, interval '0') AS wait_time
    FROM queue
    ORDER BY queue.bucket, queue.priority, queue.id;

CREATE VIEW campaigns AS
    SELECT DISTINCT run.suite AS name FROM run;

CREATE VIEW perpetual_candidates AS
    SELECT candidate.suite, candidate.codebase FROM candidate
    UNION
    SELECT run.suite, run.codebase FROM run;

CREATE VIEW first_run_time AS
    SELECT DISTINCT ON (run.codebase, run.suite) run.codebase, run.suite, run.start_time
    FROM run
    ORDER BY run.codebase, run.suite;

CREATE VIEW publish_ready AS
    WITH publishable AS (
        SELECT
            run.id,
            run.command,
            run.start_time,
            run.finish_time,
            run.finish_time - run.start_time AS duration,
            run.description,
            run.result_code,
            run.main_branch_revision,
            run.revision,
            run.context,
            run.result,
            run.suite,
            run.instigated_context,
            run.vcs_type,
            run.branch_url,
            run.logfilenames,
            run.worker,
            ARRAY(
                SELECT ROW(new_result_branch.role, new_result_branch.remote_name,
                           new_result_branch.base_revision, new_result_branch.revision)::result_branch
                FROM new_result_branch
                WHERE new_result_branch.run_id = run.id) AS result_branches,
            run.result_tags,
            run.value,
            candidate.command AS policy_command,
            named_publish_policy.name AS publish_policy_name,
            named_publish_policy.rate_limit_bucket,
            run.publish_status,
            ARRAY(
                SELECT ROW(rb.role, rb.remote_name, rb.base_revision, rb.revision,
                           pp.mode, pp.frequency_days)::result_branch_with_policy
                FROM new_result_branch rb
                LEFT JOIN unnest(named_publish_policy.per_branch_policy) pp ON pp.role = rb.role
                WHERE rb.run_id = run.id AND NOT coalesce(rb.absorbed, false)
                ORDER BY rb.role != 'main' DESC) AS unpublished_branches,
            run.target_branch_url,
            run.change_set,
            change_set.state AS change_set_state,
            run.failure_transient,
            run.failure_stage,
            run.codebase
        FROM last_effective_runs run
        INNER JOIN candidate ON candidate.codebase = run.codebase AND candidate.suite = run.suite
        INNER JOIN named_publish_policy ON candidate.publish_policy = named_publish_policy.name
        INNER JOIN change_set ON change_set.id = run.change_set
        WHERE run.result_code = 'success'
    )
    SELECT * FROM publishable
    WHERE array_length(publishable.unpublished_branches, 1) > 0;

CREATE VIEW absorbed_runs AS
    SELECT
        'propose' AS mode,
        run.change_set,
        run.codebase,
        merge_proposal.merged_at - run.finish_time AS delay,
        run.suite AS campaign,
        run.result::jsonb AS result,
        run.id,
        merge_proposal.merged_at AS absorbed_at,
        merge_proposal.merged_by,
        merge_proposal.url AS merge_proposal_url,
        run.revision
    FROM merge_proposal
    INNER JOIN run ON merge_proposal.revision = run.revision
    WHERE run.result_code = 'success' AND run.suite NOT IN ('unchanged', 'control')
    UNION
    SELECT
        'push' AS mode,
        run.change_set,
        run.codebase,
        publish.timestamp - run.finish_time AS delay,
        run.suite AS campaign,
        run.result::jsonb AS result,
        run.id,
        publish.timestamp AS absorbed_at,
        NULL::text AS merged_by,
        NULL::text AS merge_proposal_url,
        run.revision
    FROM publish
    INNER JOIN run ON publish.revision = run.revision
    WHERE publish.mode = 'push' AND run.result_code = 'success' AND publish.result_code = 'success'
      AND run.suite NOT IN ('unchanged', 'control');

-- ---------------------------------------------------------------------------
-- last_run maintenance
-- ---------------------------------------------------------------------------

-- Recompute the last_run row of one (codebase, campaign) pair.
CREATE FUNCTION refresh_last_run(_codebase text, _campaign text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_last record;
    v_effective_id text;
    v_effective_code text;
    v_unabsorbed_id text;
BEGIN
    -- The newest run of the pair.  DESC puts NULL start_time first.
    SELECT r.id, r.result_code, r.failure_transient, r.resume_from INTO v_last
    FROM run r
    WHERE r.codebase = _codebase AND r.suite = _campaign
    ORDER BY r.start_time DESC
    LIMIT 1;

    IF NOT FOUND THEN
        DELETE FROM last_run WHERE codebase = _codebase AND campaign = _campaign;
        RETURN;
    END IF;

    -- The effective run.
    IF v_last.result_code = 'nothing-new-to-do' THEN
        v_effective_id := v_last.resume_from;
        v_effective_code := 'success';
    ELSIF v_last.failure_transient IS TRUE THEN
        SELECT r.id, r.result_code INTO v_effective_id, v_effective_code
        FROM run r
        WHERE r.codebase = _codebase AND r.suite = _campaign
          AND r.result_code != 'nothing-new-to-do'
          AND NOT coalesce(r.failure_transient, false)
        ORDER BY r.start_time DESC
        LIMIT 1;
        IF NOT FOUND THEN
            v_effective_id := NULL;
            v_effective_code := NULL;
        END IF;
    ELSE
        v_effective_id := v_last.id;
        v_effective_code := v_last.result_code;
    END IF;

    -- The unabsorbed run.  A NULL result code falls through to the last branch.
    IF v_effective_code = 'nothing-to-do' THEN
        v_unabsorbed_id := NULL;
    ELSIF v_effective_code != 'success' THEN
        v_unabsorbed_id := v_effective_id;
    ELSIF EXISTS (SELECT 1 FROM new_result_branch b
                  WHERE b.run_id = v_effective_id AND NOT b.absorbed) THEN
        v_unabsorbed_id := v_effective_id;
    ELSE
        v_unabsorbed_id := NULL;
    END IF;

    INSERT INTO last_run AS lr
        (codebase, campaign, last_run_id, last_effective_run_id, last_unabsorbed_run_id)
    VALUES (_codebase, _campaign, v_last.id, v_effective_id, v_unabsorbed_id)
    ON CONFLICT (codebase, campaign) DO UPDATE SET
        last_run_id = EXCLUDED.last_run_id,
        last_effective_run_id = EXCLUDED.last_effective_run_id,
        last_unabsorbed_run_id = EXCLUDED.last_unabsorbed_run_id;
END;
$$;

-- Recompute the last_run row of the pair a run belongs to (nothing if the run is gone).
CREATE FUNCTION refresh_last_run(run_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_codebase text;
    v_suite text;
BEGIN
    SELECT r.codebase, r.suite INTO v_codebase, v_suite
    FROM run r WHERE r.id = refresh_last_run.run_id;
    IF FOUND THEN
        PERFORM refresh_last_run(v_codebase, v_suite);
    END IF;
END;
$$;

-- Move a change set forward: created -> working -> ready -> publishing -> done.
CREATE FUNCTION refresh_change_set_state(change_set_id text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_old change_set_state;
    v_state change_set_state;
BEGIN
    SELECT cs.state INTO STRICT v_old FROM change_set cs WHERE cs.id = change_set_id;
    v_state := v_old;

    IF v_state = 'created'
       AND EXISTS (SELECT FROM run r WHERE r.change_set = change_set_id) THEN
        v_state := 'working';
    END IF;

    IF v_state = 'working'
       AND EXISTS (SELECT FROM run r
                   WHERE r.change_set = change_set_id AND r.result_code = 'success')
       AND NOT EXISTS (SELECT FROM change_set_todo t WHERE t.change_set = change_set_id) THEN
        v_state := 'ready';
    END IF;

    IF v_state = 'ready'
       AND EXISTS (SELECT FROM publish p
                   WHERE p.change_set = change_set_id AND p.result_code = 'success') THEN
        v_state := 'publishing';
    END IF;

    IF v_state = 'publishing'
       AND NOT EXISTS (SELECT FROM change_set_unpublished u
                       WHERE u.change_set = change_set_id) THEN
        v_state := 'done';
    END IF;

    IF v_state != v_old THEN
        UPDATE change_set SET state = v_state WHERE id = change_set_id;
    END IF;

    RETURN v_state::text;
END;
$$;

CREATE FUNCTION run_trigger_refresh_last_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM refresh_last_run(OLD.codebase, OLD.suite::text);
    ELSE
        -- On UPDATE only the NEW pair is refreshed.
        PERFORM refresh_last_run(NEW.codebase, NEW.suite::text);
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION run_trigger_refresh_change_set_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM refresh_change_set_state(NEW.change_set);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM refresh_change_set_state(OLD.change_set);
    ELSE
        PERFORM refresh_change_set_state(OLD.change_set);
        IF OLD.change_set != NEW.change_set THEN
            PERFORM refresh_change_set_state(NEW.change_set);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION new_result_branch_trigger_refresh_change_set_state() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_change_set text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.absorbed THEN
            -- Upstream looks the run up through OLD, which is NULL on INSERT:
            -- this STRICT select finds nothing and raises no_data_found (P0002),
            -- so inserting an already absorbed branch always fails.
            SELECT r.change_set INTO STRICT v_change_set FROM run r WHERE r.id = OLD.run_id;
            PERFORM refresh_change_set_state(v_change_set);
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.absorbed != OLD.absorbed THEN
            SELECT r.change_set INTO STRICT v_change_set FROM run r WHERE r.id = OLD.run_id;
            PERFORM refresh_change_set_state(v_change_set);
            IF OLD.run_id != NEW.run_id THEN
                SELECT r.change_set INTO STRICT v_change_set FROM run r WHERE r.id = NEW.run_id;
                PERFORM refresh_change_set_state(v_change_set);
            END IF;
        END IF;
    END IF;
    -- DELETE: nothing.
    RETURN NEW;
END;
$$;

CREATE FUNCTION new_result_branch_trigger_refresh_last_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.absorbed THEN
            PERFORM refresh_last_run(NEW.run_id);
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only false -> true (NULL on either side does not count).
        IF NEW.absorbed AND NOT OLD.absorbed THEN
            PERFORM refresh_last_run(NEW.run_id);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.absorbed THEN
            PERFORM refresh_last_run(OLD.run_id);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION publish_trigger_refresh_change_set_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- OLD is NULL on INSERT, so the first branch can only match on UPDATE.
    -- Both branches refresh NEW's change set.
    IF OLD.result_code = 'success' AND OLD.change_set IS NOT NULL THEN
        PERFORM refresh_change_set_state(NEW.change_set);
        IF NEW.result_code = 'success' AND NEW.change_set IS NOT NULL THEN
            PERFORM refresh_change_set_state(NEW.change_set);
        END IF;
    ELSIF NEW.result_code = 'success' AND NEW.change_set IS NOT NULL THEN
        PERFORM refresh_change_set_state(NEW.change_set);
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION expire_site_session_delete_old_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM site_session WHERE timestamp < now() - interval '1 week';
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------
-- Triggers.  Row triggers on the same table fire in name order:
-- run_refresh_change_set_state before run_refresh_last_run, and
-- new_result_branch_refresh_change_set_state before new_result_branch_refresh_last_run.
-- ---------------------------------------------------------------------------

CREATE TRIGGER run_refresh_last_run
    AFTER INSERT OR UPDATE OR DELETE ON run
    FOR EACH ROW EXECUTE FUNCTION run_trigger_refresh_last_run();

CREATE TRIGGER run_refresh_change_set_state
    AFTER INSERT OR UPDATE OR DELETE ON run
    FOR EACH ROW EXECUTE FUNCTION run_trigger_refresh_change_set_state();

CREATE TRIGGER new_result_branch_refresh_change_set_state
    AFTER INSERT OR UPDATE OR DELETE ON new_result_branch
    FOR EACH ROW EXECUTE FUNCTION new_result_branch_trigger_refresh_change_set_state();

CREATE TRIGGER new_result_branch_refresh_last_run
    AFTER INSERT OR UPDATE OR DELETE ON new_result_branch
    FOR EACH ROW EXECUTE FUNCTION new_result_branch_trigger_refresh_last_run();

CREATE TRIGGER publish_refresh_change_set_state
    AFTER INSERT OR UPDATE ON publish
    FOR EACH ROW EXECUTE FUNCTION publish_trigger_refresh_change_set_state();

CREATE TRIGGER expire_site_session_delete_old_rows_trigger
    AFTER INSERT ON site_session
    FOR EACH STATEMENT EXECUTE FUNCTION expire_site_session_delete_old_rows();
