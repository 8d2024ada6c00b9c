-- Schema 16: reports kept for a re-run that finds nothing new (a warm `report` read 37k facts again to print
-- the same table: ~75 % of its time on the 1 GB benchmark).
--
-- `data_version.version` moves whenever a file's row is written, renamed or removed: every import writes its
-- sessions, traces and observations in the transaction that saves their file's row (`Store::apply_chunks`),
-- so the version moves with any change to what a report reads. Prices are not in it: a re-pricing changes
-- costs without touching files, and the price fingerprint is part of a report's key instead.
CREATE TABLE IF NOT EXISTS data_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO data_version (id, version) VALUES (1, 0);

CREATE TRIGGER IF NOT EXISTS data_version_file_insert AFTER INSERT ON files
BEGIN
    UPDATE data_version SET version = version + 1;
END;

CREATE TRIGGER IF NOT EXISTS data_version_file_update AFTER UPDATE ON files
BEGIN
    UPDATE data_version SET version = version + 1;
END;

CREATE TRIGGER IF NOT EXISTS data_version_file_delete AFTER DELETE ON files
BEGIN
    UPDATE data_version SET version = version + 1;
END;

-- A report's output as printed, keyed by a hash of everything it depends on besides the stored data (its
-- arguments, time zone, width, colours, prices, the binary); valid while `version` is current.
CREATE TABLE IF NOT EXISTS report_cache (
    key     TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    used    INTEGER NOT NULL  -- larger: saved more recently (a sequence, not a clock)
) WITHOUT ROWID;
