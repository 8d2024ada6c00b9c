-- Schema 6: typed identifiers of an observation instead of metadata conventions (issue 13): the agent's tool
-- call id, the model's finish reason and the provider's response id. They are metadata (never content) and
-- are exported as gen_ai.tool.call.id, gen_ai.response.finish_reasons and gen_ai.response.id.
ALTER TABLE observations ADD COLUMN tool_call_id TEXT;
ALTER TABLE observations ADD COLUMN finish_reason TEXT;
ALTER TABLE observations ADD COLUMN response_id TEXT;

-- Fill them from what earlier releases kept in the metadata blob (per agent, as each parser named them), so
-- a store imported before this version exports the same values without a re-import.
UPDATE observations SET
  tool_call_id = COALESCE(
    json_extract(metadata, '$.toolCallId'),
    json_extract(metadata, '$.toolUseId'),
    json_extract(metadata, '$.call_id'),
    json_extract(metadata, '$.callId')),
  finish_reason = COALESCE(
    json_extract(metadata, '$.stopReason'),
    json_extract(metadata, '$.stop_reason'),
    json_extract(metadata, '$.finishReason')),
  response_id = COALESCE(
    json_extract(metadata, '$.responseId'),
    json_extract(metadata, '$.response_id'),
    json_extract(metadata, '$.messageId'))
WHERE metadata IS NOT NULL AND json_valid(metadata)
  AND (kind = 'tool' OR kind = 'generation');
UPDATE observations SET finish_reason = NULL, response_id = NULL WHERE kind = 'tool';
UPDATE observations SET tool_call_id = NULL WHERE kind = 'generation';
