package router

// Channel is the LISTEN/NOTIFY channel; the payload is the app whose rows changed.
const Channel = "belay_router"

// Schema creates the mapping in the platform's PostgreSQL, idempotently (run
// by every router-sync at start and by the shop commands). The CHECK
// constraints repeat the Go rules so no client, not even psql by hand, can
// store a row the routers would refuse for its syntax; cells are checked by
// the routers against cells.conf. One trigger bumps the app's version and
// notifies the routers.
const Schema = `
CREATE SCHEMA IF NOT EXISTS belay_router;
CREATE SEQUENCE IF NOT EXISTS belay_router.version_seq;
CREATE TABLE IF NOT EXISTS belay_router.shops (
    domain     text PRIMARY KEY
               CHECK (length(domain) <= 253 AND domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'),
    app        text NOT NULL CHECK (app ~ '^[a-z][a-z0-9-]{0,39}$'),
    cell       text NOT NULL CHECK (cell ~ '^[a-z][a-z0-9-]{0,30}$'),
    state      text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'frozen')),
    move_to    text CHECK (move_to ~ '^[a-z][a-z0-9-]{0,30}$'),
    move_step  text CHECK (move_step IN ('freezing', 'exported', 'imported')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((move_to IS NULL) = (move_step IS NULL))
);
-- Per-shop certificates (docs/cells.md): added to a schema that predates them.
ALTER TABLE belay_router.shops ADD COLUMN IF NOT EXISTS tls boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS shops_app_cell ON belay_router.shops (app, cell);
CREATE TABLE IF NOT EXISTS belay_router.versions (
    app     text PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS belay_router.routers (
    app        text NOT NULL,
    name       text NOT NULL,
    version    bigint NOT NULL DEFAULT 0,
    applied_at timestamptz,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    error      text NOT NULL DEFAULT '',
    PRIMARY KEY (app, name)
);
-- Each router's own certificate of each shop with tls: routers issue for
-- themselves (no key leaves a router), so each reports its own state.
CREATE TABLE IF NOT EXISTS belay_router.certs (
    app        text NOT NULL,
    router     text NOT NULL,
    domain     text NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'issued', 'failed')),
    not_after  timestamptz,
    error      text NOT NULL DEFAULT '',
    next_try   timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, router, domain)
);
CREATE TABLE IF NOT EXISTS belay_router.audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    app       text NOT NULL,
    domain    text NOT NULL,
    action    text NOT NULL,
    from_cell text NOT NULL DEFAULT '',
    to_cell   text NOT NULL DEFAULT '',
    actor     text NOT NULL DEFAULT '',
    detail    text NOT NULL DEFAULT ''
);
CREATE OR REPLACE FUNCTION belay_router.changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    a text;
BEGIN
    IF TG_OP = 'DELETE' THEN a := OLD.app; ELSE a := NEW.app; END IF;
    INSERT INTO belay_router.versions (app, version) VALUES (a, nextval('belay_router.version_seq'))
        ON CONFLICT (app) DO UPDATE SET version = EXCLUDED.version;
    IF TG_OP = 'UPDATE' AND OLD.app <> NEW.app THEN
        INSERT INTO belay_router.versions (app, version) VALUES (OLD.app, nextval('belay_router.version_seq'))
            ON CONFLICT (app) DO UPDATE SET version = EXCLUDED.version;
        PERFORM pg_notify('belay_router', OLD.app);
    END IF;
    PERFORM pg_notify('belay_router', a);
    RETURN NULL;
END
$fn$;
CREATE OR REPLACE TRIGGER shops_changed AFTER INSERT OR UPDATE OR DELETE ON belay_router.shops
    FOR EACH ROW EXECUTE FUNCTION belay_router.changed();
`
