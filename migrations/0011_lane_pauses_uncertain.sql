-- Lanes pause for more than refused credentials (a wrong URL, a redirect,
-- an HTML page where the API should answer, a receiver refusing even small
-- requests as too large): the reason, for the status page and the log.
-- A request that got no answer after it was sent (a timeout) may have
-- arrived: how many times the lane's next request was sent so (it is sent
-- at most a bounded number of times, across dynos), and the measurements
-- in such requests (post_uncertain).
ALTER TABLE lanes
    ADD COLUMN pause_reason text,
    ADD COLUMN uncertain int NOT NULL DEFAULT 0,
    ADD COLUMN post_uncertain bigint NOT NULL DEFAULT 0;
