-- 0012: the order of the token listing (issue 18, paged listings): oldest
-- first, then by hash, read from a position on (keyset pagination) without
-- sorting every token.
CREATE INDEX tokens_created ON tokens(created_at, hash);
