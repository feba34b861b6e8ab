-- Debian-specific part of the schema: Debian package builds produced by runs.
--
-- Needs the debversion extension (Debian package postgresql-15-debversion).
-- Note: debversion 1.1.2 (Debian 12) declares NEGATOR >= on its ">" operator
-- as well as on "<".  PostgreSQL 15.18 accepts that; 15.20 rejects the
-- extension script ("negator operator >= is already the negator of operator <").

CREATE EXTENSION IF NOT EXISTS debversion;

CREATE TABLE debian_build (
    run_id text NOT NULL REFERENCES run (id),
    version debversion NOT NULL,
    distribution text NOT NULL,
    source text NOT NULL,
    binary_packages text[],
    lintian_result json
);
CREATE INDEX ON debian_build (run_id);
CREATE INDEX ON debian_build (distribution, source, version);
