"""Schema versions, applied in order on open. Append new versions; never edit old ones."""

from datetime import datetime

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE projects (
                id VARCHAR PRIMARY KEY,
                name VARCHAR NOT NULL UNIQUE,
                description VARCHAR,
                objective VARCHAR,
                task_type VARCHAR,
                base_model VARCHAR,
                owner VARCHAR NOT NULL,
                tags VARCHAR[] NOT NULL,
                default_hyperparameters VARCHAR NOT NULL,
                archived BOOLEAN NOT NULL DEFAULT false,
                version INTEGER NOT NULL,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE project_versions (
                project_id VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                created_at TIMESTAMP NOT NULL,
                changes VARCHAR NOT NULL,
                snapshot VARCHAR NOT NULL)""",
            """CREATE TABLE runs (
                id VARCHAR PRIMARY KEY,
                project_id VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                progress DOUBLE NOT NULL,
                model VARCHAR NOT NULL,
                dataset VARCHAR NOT NULL,
                hyperparameters VARCHAR NOT NULL,
                resources VARCHAR NOT NULL,
                metrics VARCHAR NOT NULL,
                gpu_utilization DOUBLE,
                created_at TIMESTAMP NOT NULL,
                started_at TIMESTAMP,
                updated_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP,
                cancelled_at TIMESTAMP,
                resumed_from VARCHAR,
                parent_run_id VARCHAR,
                start_step BIGINT NOT NULL,
                current_step BIGINT NOT NULL,
                total_steps BIGINT,
                project_version INTEGER NOT NULL,
                message VARCHAR,
                flow_run_id VARCHAR)""",
            """CREATE TABLE logs (
                run_id VARCHAR NOT NULL,
                seq BIGINT NOT NULL,
                ts TIMESTAMP NOT NULL,
                level VARCHAR NOT NULL,
                message VARCHAR NOT NULL)""",
            """CREATE TABLE metrics (
                run_id VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                value DOUBLE NOT NULL,
                ts TIMESTAMP NOT NULL)""",
            """CREATE TABLE ingest_batches (
                run_id VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                batch_id VARCHAR NOT NULL,
                row_count INTEGER NOT NULL,
                received_at TIMESTAMP NOT NULL,
                PRIMARY KEY (run_id, kind, batch_id))""",
            """CREATE TABLE artifacts (
                id VARCHAR PRIMARY KEY,
                run_id VARCHAR NOT NULL,
                project_id VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                type VARCHAR NOT NULL,
                path VARCHAR NOT NULL,
                size_bytes BIGINT,
                step BIGINT,
                created_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE artifact_tags (
                artifact_id VARCHAR NOT NULL,
                value VARCHAR NOT NULL,
                notes VARCHAR,
                applied_at TIMESTAMP NOT NULL)""",
        ],
    ),
    (
        2,
        ["ALTER TABLE runs ADD COLUMN metric_steps VARCHAR NOT NULL DEFAULT '{}'"],
    ),
    (
        3,
        [
            "ALTER TABLE runs ADD COLUMN trainer VARCHAR NOT NULL DEFAULT 'simulated'",
            "ALTER TABLE projects ADD COLUMN default_trainer VARCHAR",
        ],
    ),
    (
        4,
        [
            """CREATE TABLE tokens (
                id VARCHAR PRIMARY KEY,
                token_hash VARCHAR NOT NULL UNIQUE,
                user_name VARCHAR NOT NULL,
                role VARCHAR NOT NULL,
                run_id VARCHAR,
                created_by VARCHAR,
                created_at TIMESTAMP NOT NULL,
                revoked_at TIMESTAMP)""",
            """CREATE TABLE project_members (
                project_id VARCHAR NOT NULL,
                user_name VARCHAR NOT NULL,
                added_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE audit_events (
                occurred_at TIMESTAMP NOT NULL,
                actor VARCHAR NOT NULL,
                action VARCHAR NOT NULL,
                project_id VARCHAR,
                run_id VARCHAR,
                target VARCHAR,
                details VARCHAR)""",
            "ALTER TABLE artifact_tags ADD COLUMN applied_by VARCHAR",
        ],
    ),
    (
        5,
        [
            """CREATE TABLE retention_policies (
                project_id VARCHAR PRIMARY KEY,
                keep_last INTEGER,
                updated_at TIMESTAMP NOT NULL)""",
        ],
    ),
    (
        6,
        [
            # Per 128-step block of each series: what downsampling needs, so a long series is read from its
            # blocks instead of every point. Appended per ingested batch; a block may have several rows.
            """CREATE TABLE metric_blocks (
                run_id VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                block BIGINT NOT NULL,
                first_step BIGINT NOT NULL,
                last_step BIGINT NOT NULL,
                min DOUBLE NOT NULL,
                max DOUBLE NOT NULL,
                last DOUBLE NOT NULL,
                last_ts TIMESTAMP NOT NULL,
                points BIGINT NOT NULL)""",
            """INSERT INTO metric_blocks
               SELECT run_id, name, step // 128, min(step), max(step), min(value), max(value), arg_max(value, step),
                      arg_max(ts, step), count(*)
               FROM metrics GROUP BY run_id, name, step // 128""",
        ],
    ),
    (
        7,
        [
            # Each run's lines numbered 1..n in (ts, seq) order, so a page of a run whose lines arrived in time
            # order is a range of line numbers rather than an OFFSET over everything before it.
            "ALTER TABLE logs ADD COLUMN line BIGINT",
            """UPDATE logs SET line = numbered.line
               FROM (SELECT seq, row_number() OVER (PARTITION BY run_id ORDER BY ts, seq) AS line FROM logs) numbered
               WHERE logs.seq = numbered.seq""",
            """CREATE TABLE log_runs (
                run_id VARCHAR PRIMARY KEY,
                lines BIGINT NOT NULL,
                last_ts TIMESTAMP NOT NULL,
                in_order BOOLEAN NOT NULL)""",
            "INSERT INTO log_runs SELECT run_id, count(*), max(ts), true FROM logs GROUP BY run_id",
        ],
    ),
    (
        8,
        ["ALTER TABLE projects ADD COLUMN visibility VARCHAR NOT NULL DEFAULT '团队可见'"],
    ),
    (
        9,
        # A digest of each batch's content, so a reused batch id with other content is told from a retry.
        # Batches stored before have none and match any content.
        ["ALTER TABLE ingest_batches ADD COLUMN digest VARCHAR"],
    ),
    (
        10,
        [
            # GPU hosts and the devices each last reported; a report replaces the host's device list.
            """CREATE TABLE gpu_hosts (
                name VARCHAR PRIMARY KEY,
                pool VARCHAR NOT NULL,
                registered_at TIMESTAMP NOT NULL,
                last_seen_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE gpu_devices (
                id VARCHAR PRIMARY KEY,
                host VARCHAR NOT NULL,
                idx INTEGER NOT NULL,
                model VARCHAR NOT NULL,
                memory_mb BIGINT NOT NULL)""",
        ],
    ),
    (
        11,
        [
            # A host names the Prefect work queue (in the training deployment's pool) that its worker polls.
            "ALTER TABLE gpu_hosts RENAME COLUMN pool TO work_queue",
            "UPDATE gpu_hosts SET work_queue = 'default' WHERE work_queue = 'ltm-process'",
            # One row per leased device: the primary key is what keeps two runs off one device.
            """CREATE TABLE gpu_leases (
                device_id VARCHAR PRIMARY KEY,
                run_id VARCHAR NOT NULL,
                host VARCHAR NOT NULL,
                leased_at TIMESTAMP NOT NULL)""",
            "ALTER TABLE runs ADD COLUMN priority INTEGER DEFAULT 0",
            "ALTER TABLE runs ADD COLUMN created_by VARCHAR",
            "ALTER TABLE runs ADD COLUMN devices VARCHAR DEFAULT '[]'",
            "ALTER TABLE runs ADD COLUMN gpu_host VARCHAR",
            "ALTER TABLE runs ADD COLUMN leased_at TIMESTAMP",
            "ALTER TABLE runs ADD COLUMN released_at TIMESTAMP",
            "ALTER TABLE projects ADD COLUMN default_priority INTEGER DEFAULT 0",
        ],
    ),
    (
        12,
        [
            # Script runs: the command line, the code folder, the process count and the code version it ran.
            "ALTER TABLE runs ADD COLUMN entrypoint VARCHAR",
            "ALTER TABLE runs ADD COLUMN source VARCHAR",
            "ALTER TABLE runs ADD COLUMN processes INTEGER",
            "ALTER TABLE runs ADD COLUMN code_version VARCHAR",
        ],
    ),
    (
        13,
        [
            # The run's name as it was when the event was recorded, so the trail still names a run once it is deleted.
            "ALTER TABLE audit_events ADD COLUMN run_name VARCHAR",
            "UPDATE audit_events SET run_name = runs.name FROM runs WHERE audit_events.run_id = runs.id",
        ],
    ),
    (
        14,
        [
            # One column naming a stored batch: DuckDB finds rows through a single-column index only, and the
            # composite primary key would otherwise be scanned in full for every batch's duplicate check.
            "ALTER TABLE ingest_batches ADD COLUMN claim VARCHAR",
            "UPDATE ingest_batches SET claim = kind || ':' || run_id || ':' || batch_id",
            "CREATE UNIQUE INDEX ingest_batches_claim ON ingest_batches (claim)",
        ],
    ),
    (
        15,
        [
            # Sweeps: the request as sent (spec), the Optuna study as its append-only journal, one row per trial.
            """CREATE TABLE sweeps (
                id VARCHAR PRIMARY KEY,
                project_id VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                spec VARCHAR NOT NULL,
                rungs VARCHAR NOT NULL,
                total_steps BIGINT,
                status VARCHAR NOT NULL,
                message VARCHAR,
                created_by VARCHAR,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP,
                flow_run_id VARCHAR,
                controller_starts INTEGER NOT NULL DEFAULT 0)""",
            """CREATE TABLE sweep_journal (
                sweep_id VARCHAR NOT NULL,
                seq INTEGER NOT NULL,
                entry VARCHAR NOT NULL)""",
            """CREATE TABLE sweep_trials (
                sweep_id VARCHAR NOT NULL,
                number INTEGER NOT NULL,
                params VARCHAR NOT NULL,
                state VARCHAR NOT NULL,
                objective DOUBLE,
                pruned_reason VARCHAR,
                message VARCHAR,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL)""",
            "ALTER TABLE runs ADD COLUMN sweep_id VARCHAR",
            "ALTER TABLE runs ADD COLUMN trial_number INTEGER",
            "ALTER TABLE runs ADD COLUMN rung INTEGER",
            "ALTER TABLE runs ADD COLUMN stop_at_step BIGINT",
        ],
    ),
    (
        16,
        [
            # Releases one can trust: each checkpoint file's SHA-256 as written, a visible mark when the files no
            # longer match, what each run ran on, and the release history with its frozen copies.
            "ALTER TABLE artifacts ADD COLUMN checksums VARCHAR",
            "ALTER TABLE artifacts ADD COLUMN corrupted_at TIMESTAMP",
            "ALTER TABLE artifacts ADD COLUMN corruption VARCHAR",
            "ALTER TABLE runs ADD COLUMN environment VARCHAR",
            "ALTER TABLE projects ADD COLUMN release_approval BOOLEAN DEFAULT false",
            """CREATE TABLE releases (
                id VARCHAR PRIMARY KEY,
                project_id VARCHAR NOT NULL,
                number INTEGER NOT NULL,
                action VARCHAR NOT NULL,
                state VARCHAR NOT NULL,
                artifact_id VARCHAR,
                run_id VARCHAR,
                run_name VARCHAR,
                artifact_name VARCHAR,
                step BIGINT,
                notes VARCHAR,
                requested_by VARCHAR NOT NULL,
                requested_at TIMESTAMP NOT NULL,
                decided_by VARCHAR,
                decided_at TIMESTAMP,
                decision_notes VARCHAR,
                withdrawn_by VARCHAR,
                withdrawn_at TIMESTAMP,
                frozen_path VARCHAR,
                frozen_note VARCHAR,
                checksums VARCHAR,
                manifest VARCHAR)""",
        ],
    ),
    (
        17,
        [
            # Runs that survive: preemption, automatic restarts with log rules, hang detection.
            "ALTER TABLE projects ADD COLUMN preemption BOOLEAN DEFAULT false",
            "ALTER TABLE projects ADD COLUMN max_restarts INTEGER DEFAULT 0",
            "ALTER TABLE projects ADD COLUMN hang_minutes DOUBLE",
            "ALTER TABLE projects ADD COLUMN metric_thresholds VARCHAR DEFAULT '[]'",
            "ALTER TABLE projects ADD COLUMN log_rules VARCHAR DEFAULT '[]'",
            "ALTER TABLE runs ADD COLUMN max_restarts INTEGER",
            "ALTER TABLE runs ADD COLUMN restart_of VARCHAR",
            "ALTER TABLE runs ADD COLUMN restarts INTEGER DEFAULT 0",
            "ALTER TABLE runs ADD COLUMN labels VARCHAR DEFAULT '[]'",
            "ALTER TABLE runs ADD COLUMN preempted_by VARCHAR",
            "ALTER TABLE runs ADD COLUMN preempted_at TIMESTAMP",
            "ALTER TABLE runs ADD COLUMN progressed_at TIMESTAMP",
            "ALTER TABLE runs ADD COLUMN hung_at TIMESTAMP",
        ],
    ),
    (
        18,
        [
            # Notifications: each project's webhooks, and every delivery with its attempts.
            """CREATE TABLE webhooks (
                project_id VARCHAR PRIMARY KEY,
                hooks VARCHAR NOT NULL,
                updated_by VARCHAR,
                updated_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE webhook_deliveries (
                id VARCHAR PRIMARY KEY,
                project_id VARCHAR NOT NULL,
                run_id VARCHAR,
                url VARCHAR NOT NULL,
                format VARCHAR NOT NULL,
                event VARCHAR NOT NULL,
                payload VARCHAR NOT NULL,
                state VARCHAR NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error VARCHAR,
                created_at TIMESTAMP NOT NULL,
                next_attempt_at TIMESTAMP,
                delivered_at TIMESTAMP)""",
        ],
    ),
]


def latest_version() -> int:
    return MIGRATIONS[-1][0]


def apply(con, applied_at: datetime, up_to: int | None = None) -> None:
    """Bring the database of connection `con` to version `up_to` (default: the latest), each version in its own
    transaction and recorded in schema_version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    for version, statements in MIGRATIONS:
        if version <= current or (up_to is not None and version > up_to):
            continue
        con.begin()
        try:
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, applied_at])
            con.commit()
        except BaseException:
            con.rollback()
            raise
