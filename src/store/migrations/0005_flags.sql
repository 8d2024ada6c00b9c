-- Schema 5: why values of an observation were rejected at import (an impossible token count or cost: negative,
-- not a number, above 10^12 tokens or 10^6 USD per call). The record is counted without them; reports mark it.
ALTER TABLE observations ADD COLUMN flag TEXT;
