import PostgresNIO

/// Builds a statement from the filters actually given, binding each value as `$n`.
///
/// Why not one static statement with `($1 IS NULL OR …)` per filter: PostgreSQL turns `EXISTS`/`IN`
/// subqueries into semi-joins before it folds such constants, so a filter written inside an `OR` stays a
/// subplan, and the planner then hashes it with a sequential scan of the whole subquery table (1.3 s at
/// 5 million recipients, see docs/operations.md). Written only when present, each filter is a plain
/// conjunct that can drive the plan through its index.
struct SQLBuilder {
    private(set) var sql: String
    private(set) var bindings = PostgresBindings()

    init(_ sql: String) {
        self.sql = sql
    }

    /// Appends `value` as the next parameter and returns its placeholder (`$3`).
    mutating func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
        bindings.append(value, context: .default)
        return "$\(bindings.count)"
    }

    /// Appends text to the statement.
    mutating func append(_ text: String) {
        sql += text
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: bindings) }
}
