import java.math.BigDecimal;
import java.sql.*;
import java.time.*;

/** pgJDBC against OmenDB's server: run by tests/omendb/clients.rs. Usage: JdbcClient PORT; prints OK or throws. */
public class JdbcClient {
    static void check(boolean ok, String what) { if (!ok) throw new AssertionError(what); }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/omendb";
        try (Connection c = DriverManager.getConnection(url, "app", "")) {
            DatabaseMetaData md = c.getMetaData();
            check(md.getDatabaseProductVersion().startsWith("15"), "version " + md.getDatabaseProductVersion());
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE jt (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2), at TIMESTAMP, d DATE, ok BOOLEAN, f DOUBLE PRECISION, b BYTEA)");
                s.execute("CREATE INDEX jt_name ON jt (name)");
            }
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement("INSERT INTO jt VALUES (?, ?, ?, ?, ?, ?, ?, ?)")) {
                for (int i = 1; i <= 10; i++) {  // past prepareThreshold (5): server-prepared, binary
                    p.setLong(1, i);
                    p.setString(2, "n" + i);
                    p.setBigDecimal(3, new BigDecimal("12.34"));
                    p.setObject(4, LocalDateTime.of(2024, 2, 29, 23, 59, 58));
                    p.setObject(5, LocalDate.of(2024, 2, 29));
                    p.setBoolean(6, i % 2 == 0);
                    p.setDouble(7, i * 0.5);
                    p.setBytes(8, new byte[] {0, (byte) i});
                    check(p.executeUpdate() == 1, "insert " + i);
                }
            }
            c.commit();
            try (PreparedStatement p = c.prepareStatement("SELECT name, price, at, d, ok, f, b FROM jt WHERE id = ?")) {
                for (int i = 1; i <= 10; i++) {
                    p.setLong(1, i);
                    try (ResultSet r = p.executeQuery()) {
                        check(r.next(), "row " + i);
                        check(r.getString(1).equals("n" + i), "name");
                        check(r.getBigDecimal(2).compareTo(new BigDecimal("12.34")) == 0, "price " + r.getBigDecimal(2));
                        check(r.getObject(3, LocalDateTime.class).equals(LocalDateTime.of(2024, 2, 29, 23, 59, 58)), "at " + r.getObject(3));
                        check(r.getObject(4, LocalDate.class).equals(LocalDate.of(2024, 2, 29)), "d");
                        check(r.getBoolean(5) == (i % 2 == 0), "ok");
                        check(r.getDouble(6) == i * 0.5, "f");
                        check(r.getBytes(7)[1] == (byte) i, "b");
                    }
                }
            }
            try (Statement s = c.createStatement()) {
                s.executeUpdate("UPDATE jt SET name = 'gone' WHERE id = 1");
                c.rollback();
                try (ResultSet r = s.executeQuery("SELECT name FROM jt WHERE id = 1")) {
                    check(r.next() && r.getString(1).equals("n1"), "rollback");
                }
                try {
                    s.executeUpdate("INSERT INTO jt (id, name) VALUES (1, 'dup')");
                    check(false, "duplicate accepted");
                } catch (SQLException e) {
                    check(e.getSQLState().equals("23505"), "sqlstate " + e.getSQLState());
                    c.rollback();
                }
            }
            c.setAutoCommit(true);
            try (ResultSet r = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                check(r.next() && r.getString("TABLE_NAME").equals("jt"), "getTables");
            }
            int columns = 0;
            try (ResultSet r = md.getColumns(null, "public", "jt", "%")) {
                while (r.next()) columns++;
            }
            check(columns == 8, "getColumns " + columns);
            try (ResultSet r = md.getPrimaryKeys(null, "public", "jt")) {
                check(r.next() && r.getString("COLUMN_NAME").equals("id"), "getPrimaryKeys");
            }
            try (ResultSet r = md.getIndexInfo(null, "public", "jt", false, false)) {
                int n = 0;
                while (r.next()) n++;
                check(n == 2, "getIndexInfo " + n);
            }
        }
        System.out.println("OK");
    }
}
