-- +goose Up

-- loader_claim advances a node's offset from p_expect to p_last, taking the
-- row lock that serialises loaders of one node, or raises:
--   CL002 when the offset is already p_last (an earlier attempt committed and
--         its answer was lost: the batch is in, nothing to do);
--   CL001 when it is anything else (another process loads under this
--         NODE_ID, or an operator changed the row; DETAIL is the offset).
-- Raising, rather than returning a status, is what lets the loader send the
-- claim and the COPY of the batch as one simple-protocol message: the two
-- run as one implicit transaction, a failed claim aborts it before a row is
-- written, and a batch costs one round trip instead of four (BEGIN, claim,
-- COPY, COMMIT), which is what keeps the loader near a raw COPY's speed when
-- the database is far or busy.
-- +goose StatementBegin
CREATE FUNCTION loader_claim(p_node text, p_expect bigint, p_last bigint, p_loaded bigint,
                             p_rejected bigint, p_last_received timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cur bigint;
BEGIN
    UPDATE loader_offsets
       SET last_index = p_last, rows_loaded = rows_loaded + p_loaded, rows_rejected = rows_rejected + p_rejected,
           last_received_at = COALESCE(p_last_received, last_received_at), updated_at = now()
     WHERE node_id = p_node AND last_index = p_expect;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT last_index INTO cur FROM loader_offsets WHERE node_id = p_node;
    IF cur = p_last THEN
        RAISE EXCEPTION 'batch up to % of node % is already committed', p_last, p_node USING ERRCODE = 'CL002';
    END IF;
    RAISE EXCEPTION 'loader offset of node % is %, expected %', p_node, COALESCE(cur::text, 'missing'), p_expect
        USING ERRCODE = 'CL001', DETAIL = COALESCE(cur::text, '');
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION loader_claim(text, bigint, bigint, bigint, bigint, timestamptz);
