package com.heymax.lakehouse.serving;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hive.service.server.HiveServer2;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.hive.thriftserver.HiveThriftServer2;
import org.apache.spark.sql.hive.thriftserver.SparkSQLEnv;

/**
 * The lakehouse's Thrift server: Spark's {@code HiveThriftServer2}, plus the table registration
 * done by the server itself.
 *
 * <p>Spark's own main class is used as is; before it opens the port, this class creates the Spark
 * session and registers every table of the registrations file (system property
 * {@code lakehouse.thrift.registrations}; lines {@code name TAB location TAB create-database TAB
 * create-table}, written by {@code lakehouse thrift start}) whose Delta log exists, inside
 * {@link ReadOnlyGuard#asAdministrator}. Afterwards a daemon thread registers the tables a job
 * creates later, every {@code lakehouse.thrift.registerIntervalSeconds} (default 2). Clients never
 * register anything: their sessions are read-only.
 */
public final class LakehouseThriftServer {

    public static final String REGISTRATIONS_PROPERTY = "lakehouse.thrift.registrations";
    public static final String INTERVAL_PROPERTY = "lakehouse.thrift.registerIntervalSeconds";
    /** A file holding the TLS keystore's password: read here, so the password is never on a command line. */
    public static final String KEYSTORE_PASSWORD_FILE_PROPERTY = "lakehouse.thrift.keystorePasswordFile";

    private LakehouseThriftServer() {}

    public static void main(String[] args) throws Exception {
        String passwordFile = System.getProperty(KEYSTORE_PASSWORD_FILE_PROPERTY);
        if (passwordFile != null && !passwordFile.isEmpty()) {
            // HiveConf applies system properties, as it does for --hiveconf.
            System.setProperty("hive.server2.keystore.password",
                    new String(Files.readAllBytes(Paths.get(passwordFile)), StandardCharsets.UTF_8).trim());
        }
        // --hiveconf settings become system properties here, as in HiveThriftServer2.main.
        new HiveServer2.ServerOptionsProcessor("HiveThriftServer2").parse(args);
        SparkSQLEnv.init();
        Registrar registrar = new Registrar(SparkSQLEnv.sparkSession(), registrationsFile());
        registrar.registerPending();
        HiveThriftServer2.main(args);
        long intervalMillis = (long) (1000 * Double.parseDouble(System.getProperty(INTERVAL_PROPERTY, "2")));
        Thread thread = new Thread(() -> registrar.loop(intervalMillis), "lakehouse-table-registrar");
        thread.setDaemon(true);
        thread.start();
    }

    private static Path registrationsFile() {
        String value = System.getProperty(REGISTRATIONS_PROPERTY);
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("system property " + REGISTRATIONS_PROPERTY + " is not set");
        }
        return Paths.get(value);
    }

    static void log(String message) {
        log("INFO", message);
    }

    static void log(String level, String message) {
        System.err.println(LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss"))
                + " " + level + " LakehouseThriftServer: " + message);
    }

    /** Registers the tables of the registrations file that exist and are not registered yet. */
    static final class Registrar {
        private final SparkSession spark;
        private final Path file;
        private final Set<String> registered = new HashSet<>();
        private final Map<String, String> lastFailure = new HashMap<>();

        Registrar(SparkSession spark, Path file) {
            this.spark = spark;
            this.file = file;
        }

        void loop(long intervalMillis) {
            while (!Thread.currentThread().isInterrupted()) {
                try {
                    Thread.sleep(intervalMillis);
                    registerPending();
                } catch (InterruptedException e) {
                    return;
                } catch (RuntimeException e) {
                    log("registration pass failed: " + e);
                }
            }
        }

        synchronized void registerPending() {
            List<String> lines;
            try {
                lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            } catch (IOException e) {
                log("cannot read " + file + ": " + e);
                return;
            }
            Configuration hadoopConf = spark.sparkContext().hadoopConfiguration();
            for (String line : lines) {
                String[] parts = line.split("\t");
                if (parts.length != 4 || registered.contains(parts[0])) {
                    continue;
                }
                String name = parts[0];
                String location = parts[1];
                try {
                    org.apache.hadoop.fs.Path logDir = new org.apache.hadoop.fs.Path(location, "_delta_log");
                    FileSystem fs = logDir.getFileSystem(hadoopConf);
                    if (!fs.exists(logDir)) {
                        continue;
                    }
                    ReadOnlyGuard.asAdministrator(() -> {
                        spark.sql(parts[2]);
                        spark.sql(parts[3]);
                    });
                    registered.add(name);
                    lastFailure.remove(name);
                    log("registered " + name + " (" + location + ")");
                } catch (Exception e) {
                    // A table being created has a log folder before its first commit: try again later.
                    String message = String.valueOf(e.getMessage()).split("\n")[0];
                    if (!message.equals(lastFailure.put(name, message))) {
                        log("not registered yet: " + name + ": " + message);
                    }
                }
            }
        }
    }
}
