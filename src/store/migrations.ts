// Versioned schema migrations, applied in order inside one transaction each; PRAGMA user_version
// records the last one applied. Add a migration, never edit a shipped one.

const DIMENSION_COLUMNS = ['read_iops', 'write_iops', 'read_bps', 'write_bps']
  .flatMap((d) => [`min_${d} INTEGER`, `max_${d} INTEGER`])
  .join(',\n    ');

export const MIGRATIONS: readonly string[] = [
  // 1: volumes, attachments, the append-only event log.
  `
  CREATE TABLE volumes (
    name        TEXT PRIMARY KEY,
    pool        TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes > 0),
    fs_type     TEXT NOT NULL CHECK (fs_type IN ('ext4', 'xfs')),
    class       TEXT NOT NULL,
    ephemeral   INTEGER NOT NULL DEFAULT 0,
    -- creating → ready → deleting; an interrupted create or delete is finished or undone on start.
    state       TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
    formatted   INTEGER NOT NULL DEFAULT 0,
    backing     TEXT,
    device      TEXT,
    dev_major   INTEGER,
    dev_minor   INTEGER,
    ${DIMENSION_COLUMNS},
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  );
  CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    volume       TEXT NOT NULL REFERENCES volumes(name),
    pod_uid      TEXT,
    target       TEXT NOT NULL UNIQUE,
    read_only    INTEGER NOT NULL DEFAULT 0,
    -- attaching → attached → detaching; intent is written before the node is touched.
    state        TEXT NOT NULL CHECK (state IN ('attaching', 'attached', 'detaching')),
    cgroup_version TEXT,
    pod_cgroup   TEXT,
    device       TEXT,
    -- JSON array of the cgroup directories qosd wrote rules into, so detach clears exactly those.
    cgroup_paths TEXT NOT NULL DEFAULT '[]',
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
  );
  CREATE INDEX attachments_volume ON attachments(volume);
  CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    TEXT NOT NULL,
    volume  TEXT,
    kind    TEXT NOT NULL,
    source  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX events_volume ON events(volume, id);
  CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  `,
  // 2: a volume's QoS is its class plus explicit overrides; keep the overrides so a class change
  // can be re-applied. Earlier volumes had every figure explicit. Pool calibrations.
  `
  ALTER TABLE volumes ADD COLUMN qos_overrides TEXT NOT NULL DEFAULT '{"min":{},"max":{}}';
  UPDATE volumes SET qos_overrides = json_object(
    'min', json_object('readIops', min_read_iops, 'writeIops', min_write_iops, 'readBps', min_read_bps, 'writeBps', min_write_bps),
    'max', json_object('readIops', max_read_iops, 'writeIops', max_write_iops, 'readBps', max_read_bps, 'writeBps', max_write_bps));
  CREATE TABLE calibrations (
    id          INTEGER PRIMARY KEY,
    pool        TEXT NOT NULL,
    -- running is the intent: a scratch volume exists in the pool until the row says done/failed.
    state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    method      TEXT NOT NULL,
    scratch     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    read_iops   INTEGER,
    write_iops  INTEGER,
    read_bps    INTEGER,
    write_bps   INTEGER,
    error       TEXT
  );
  CREATE INDEX calibrations_pool ON calibrations(pool, id);
  `,
  // 3: a CSI raw-block volume is a device node bind-mounted on a file, not a filesystem on a directory.
  `
  ALTER TABLE attachments ADD COLUMN kind TEXT NOT NULL DEFAULT 'mount' CHECK (kind IN ('mount', 'block'));
  `,
  // 4: a calibration also runs mixed workloads and keeps how well the device cost model predicted them.
  `
  ALTER TABLE calibrations ADD COLUMN mixes TEXT NOT NULL DEFAULT '[]';
  `,
  // 5: volumes by device number: each repair a reconcile pass confirms asks which volume owns a
  // device, and without the index each ask read the whole table.
  `
  CREATE INDEX volumes_device ON volumes(dev_major, dev_minor);
  `,
  // 6: the event log is kept for a while, not for ever (events.maxAgeDays, events.maxRows). Still no
  // UPDATE; a DELETE only of the oldest rows, up to the mark the retention sets in the same
  // transaction, which only ever rises: nothing can take a recent event out of the middle.
  `
  CREATE INDEX events_time ON events(time);
  CREATE TABLE event_retention (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through INTEGER NOT NULL
  );
  INSERT INTO event_retention (id, pruned_through) VALUES (1, 0);
  CREATE TRIGGER event_retention_rises BEFORE UPDATE ON event_retention WHEN NEW.pruned_through < OLD.pruned_through
    BEGIN SELECT RAISE(ABORT, 'the event retention mark only rises'); END;
  DROP TRIGGER events_no_delete;
  CREATE TRIGGER events_no_delete BEFORE DELETE ON events WHEN OLD.id > (SELECT pruned_through FROM event_retention)
    BEGIN SELECT RAISE(ABORT, 'events are append-only: only the retention removes them, oldest first'); END;
  `,
  // 7: a volume belongs to someone: "ns:<namespace>" (made by a flex mount in that namespace, or
  // given one by the operator), "csi" (provisioned for a PersistentVolume); NULL: nobody yet
  // (made before owners, or by the operator without one), claimed by the first flex mount.
  // Volumes the event log shows were created through CSI are CSI's.
  `
  ALTER TABLE volumes ADD COLUMN owner TEXT;
  UPDATE volumes SET owner = 'csi'
    WHERE name IN (SELECT volume FROM events WHERE kind = 'volume-create-started' AND source = 'csi');
  `,
  // 8: latency targets, per direction, in whole microseconds (NULL: none); the class's, then the
  // volume's own, as the rate figures are (the overrides' JSON gains a "latency" object).
  `
  ALTER TABLE volumes ADD COLUMN read_latency_us INTEGER CHECK (read_latency_us > 0);
  ALTER TABLE volumes ADD COLUMN write_latency_us INTEGER CHECK (write_latency_us > 0);
  `,
];
