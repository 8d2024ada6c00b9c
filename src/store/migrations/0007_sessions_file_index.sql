-- Schema 7: sessions by file. Re-reading a file deletes the sessions it wrote (`DELETE FROM sessions WHERE
-- file_id = ?`), which was a scan of every session for each file read from its start: with 13,230 pi sessions
-- that scan was most of a cold import (bench/BENCHMARKS.md).
CREATE INDEX IF NOT EXISTS sessions_file ON sessions(file_id);
