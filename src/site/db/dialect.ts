/** Which database holds the site: the embedded SQLite file, or PostgreSQL. */
export type Dialect = "sqlite" | "postgres";
