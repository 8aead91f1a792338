-- 0006: targeting rules and variants of feature flags (issue 17). Both are
-- JSON arrays as actors.EncodeFlagTargeting writes them ('' for none, which
-- is what every flag written before this migration has): rules
-- [{"attribute","operator","values":[text…],"variant"}], variants
-- [{"name","value":<JSON>,"weight"}]. off_variant names the variant a
-- disabled flag serves ('' for none).
ALTER TABLE flags ADD COLUMN rules TEXT NOT NULL DEFAULT '';
ALTER TABLE flags ADD COLUMN variants TEXT NOT NULL DEFAULT '';
ALTER TABLE flags ADD COLUMN off_variant TEXT NOT NULL DEFAULT '';
