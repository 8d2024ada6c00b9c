-- Schema 9: parser checkpoints in their own table. A checkpoint is ~2.5 KB (Claude's pending tool calls and
-- message ids) and was stored inline in `files`, whose columns added later (`tail_len`, `tail_hash`) sit after
-- it: listing the files at the start of every run read all of them, overflow pages included (14 MB, ~25 ms
-- twice per run on the 1 GB Claude benchmark). Only a file that changed needs its checkpoint.
CREATE TABLE IF NOT EXISTS checkpoints (
    file_id    INTEGER PRIMARY KEY,   -- files.id
    checkpoint TEXT NOT NULL          -- the parser's state at files.offset
);
INSERT OR REPLACE INTO checkpoints (file_id, checkpoint)
    SELECT id, checkpoint FROM files WHERE checkpoint IS NOT NULL;
UPDATE files SET checkpoint = NULL WHERE checkpoint IS NOT NULL;
