-- The tenant's `detection.*` settings now drive the detectors, with other fields (`one_in`,
-- `rest_readings`, `features`, `drift`, `severity`); the old ones (`ewma_band`, `half_life_secs`,
-- `rate_band`, `clear_after`, `severity`) were stored but never read by a detector. They are dropped, so
-- what a tenant reads back is what its detectors use (the defaults, until it saves settings again, which
-- reaches the detectors as an event on the rules topic).
UPDATE tenant_settings SET settings = settings - 'detection' WHERE settings ? 'detection';
