"""Migration folders in the layouts of golang-migrate, Flyway and dbmate, shared by the step tests."""

from __future__ import annotations

GOLANG_MIGRATE = {
    "1_create_users.up.sql": "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);",
    "1_create_users.down.sql": "DROP TABLE users;",
    "2_add_email.up.sql": "ALTER TABLE users ADD COLUMN email text;",
    "2_add_email.down.sql": "ALTER TABLE users DROP COLUMN email;",
    # golang-migrate never wraps a file in a transaction, so many folders bring their own
    "3_seed_admin.up.sql": "BEGIN;\nINSERT INTO users (name, email) VALUES ('admin', 'admin@example.com');\nCOMMIT;\n",
    "3_seed_admin.down.sql": "DELETE FROM users WHERE name = 'admin';",
    "10_users_by_email.up.sql": "CREATE INDEX CONCURRENTLY users_email ON users (email);",
    "10_users_by_email.down.sql": "DROP INDEX CONCURRENTLY users_email;",
    # some projects' migrations read golang-migrate's own table
    "11_note_version.up.sql": "CREATE TABLE migration_notes AS SELECT version, dirty FROM schema_migrations;",
    "11_note_version.down.sql": "DROP TABLE migration_notes;",
}

FLYWAY = {
    "V1__init.sql": "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);\n",
    "V1.1__add_email.sql": "ALTER TABLE accounts\n  ADD COLUMN email text;\r\n",
    "V1_2__seed.sql": "\ufeffINSERT INTO accounts VALUES (1, 'ann', 'ann@example.com');",
    "V1.10__name_index.sql": "-- naïve index\nCREATE INDEX accounts_name ON accounts (name);\n\n",
    "V2__created.sql": "ALTER TABLE accounts ADD COLUMN created timestamptz DEFAULT now();\n",
    "U2__created.sql": "ALTER TABLE accounts DROP COLUMN created;\n",
    "R__account_names.sql": "CREATE OR REPLACE VIEW account_names AS SELECT name FROM accounts;\n",
}

FLYWAY_ORDER = ["V1__init.sql", "V1.1__add_email.sql", "V1_2__seed.sql", "V1.10__name_index.sql", "V2__created.sql",
                "R__account_names.sql"]

DBMATE = {
    "20240101000000_create_posts.sql":
        "-- migrate:up\nCREATE TABLE posts (id serial PRIMARY KEY, title text NOT NULL);\n\n"
        "-- migrate:down\nDROP TABLE posts;\n",
    "20240102000000_seed.sql": "-- migrate:up\nINSERT INTO posts (title) VALUES ('hello');\n\n"
                               "-- migrate:down\nDELETE FROM posts;\n",
    "20240103000000_title_index.sql":
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY posts_title ON posts (title);\n\n"
        "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY posts_title;\n",
}

# The same three layouts, written for MySQL and MariaDB.
GOLANG_MIGRATE_MYSQL = {
    "1_create_users.up.sql": "CREATE TABLE users (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL);",
    "1_create_users.down.sql": "DROP TABLE users;",
    "2_add_email.up.sql": "ALTER TABLE users ADD COLUMN email varchar(200);",
    "2_add_email.down.sql": "ALTER TABLE users DROP COLUMN email;",
    "3_seed.up.sql": "INSERT INTO users (name, email) VALUES ('admin', 'admin@example.com');\n"
                     "INSERT INTO users (name, email) VALUES ('ops', 'ops@example.com');\n",
    "3_seed.down.sql": "DELETE FROM users WHERE name IN ('admin', 'ops');",
    # a stored procedure in a multi-statement file: the server's parser splits it, no DELIMITER needed
    "4_count_users.up.sql": "CREATE PROCEDURE count_users() BEGIN SELECT COUNT(*) FROM users; END;\n",
    "4_count_users.down.sql": "DROP PROCEDURE count_users;",
    "10_note_version.up.sql": "CREATE TABLE migration_notes AS SELECT version, dirty FROM schema_migrations;",
    "10_note_version.down.sql": "DROP TABLE migration_notes;",
}

FLYWAY_MYSQL = {
    "V1__init.sql": "CREATE TABLE accounts (id int PRIMARY KEY, name varchar(100) NOT NULL);\n",
    "V1.1__add_email.sql": "ALTER TABLE accounts\n  ADD COLUMN email varchar(200);\r\n",
    "V1_2__seed.sql": "\ufeffINSERT INTO accounts VALUES (1, 'ann', 'ann@example.com');",
    "V1.10__name_index.sql": "-- naïve index\nCREATE INDEX accounts_name ON accounts (name);\n\n",
    # DELIMITER, the mysql client's command that Flyway honours, around a trigger's body
    "V2__audit.sql": "CREATE TABLE audit (account int);\nDELIMITER $$\n"
                     "CREATE TRIGGER accounts_audit AFTER INSERT ON accounts FOR EACH ROW\nBEGIN\n"
                     "  INSERT INTO audit VALUES (NEW.id); -- one row per account\nEND$$\nDELIMITER ;\n"
                     "INSERT INTO accounts VALUES (2, 'bob', 'bob@example.com');\n",
    "U2__audit.sql": "DROP TRIGGER accounts_audit;\nDROP TABLE audit;\nDELETE FROM accounts WHERE id = 2;\n",
    "R__account_names.sql": "CREATE OR REPLACE VIEW account_names AS SELECT name FROM accounts;\n",
}

DBMATE_MYSQL = {
    "20240101000000_create_posts.sql":
        "-- migrate:up\nCREATE TABLE posts (id int AUTO_INCREMENT PRIMARY KEY, title varchar(200) NOT NULL);\n\n"
        "-- migrate:down\nDROP TABLE posts;\n",
    "20240102000000_seed.sql": "-- migrate:up\nINSERT INTO posts (title) VALUES ('hello');\n\n"
                               "-- migrate:down\nDELETE FROM posts;\n",
    "20240103000000_title_index.sql":
        "-- migrate:up transaction:false\nCREATE INDEX posts_title ON posts (title);\n\n"
        "-- migrate:down transaction:false\nDROP INDEX posts_title ON posts;\n",
}
