-- durably SQLite world, schema version 3: deployments seen by workers.

CREATE TABLE deployments (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE INDEX runs_deployment ON runs (namespace, deployment, status);
