-- Alert explanations: which feature of a detector fired and why, in words, and each feature's score
-- (`-log10` of how often a reading that unusual is expected), from version 2 of haltless.alerts.v1.
-- Alerts projected before this migration keep an empty explanation.
ALTER TABLE alerts
    ADD COLUMN explanation text NOT NULL DEFAULT '',
    ADD COLUMN contributions jsonb NOT NULL DEFAULT '[]'::jsonb;
