-- 0001 initial: the keyspace as DESIGN.md describes it (per queue K: list K, {K}:processing:*,
-- {K}:workers, {K}:delayed, {K}:failed, {K}:failed:index; global herald:processes, herald:schema).
-- Nothing existed before it, so there is nothing to move.
-- KEYS[1] list  KEYS[2] delayed  KEYS[3] failed  KEYS[4] failed index  KEYS[5] workers
-- Returns the number of keys changed.
return 0
