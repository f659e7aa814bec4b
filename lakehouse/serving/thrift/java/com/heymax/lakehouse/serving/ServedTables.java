package com.heymax.lakehouse.serving;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The tables the server serves, {@code layer.name} and location, from the registrations file the start
 * writes (system property {@code lakehouse.thrift.registrations}, see {@link LakehouseThriftServer}).
 * The access guard uses it to name a relation that carries no catalog entry (read by its location) and
 * to list the tables a user may see.
 */
final class ServedTables {

    private static final Object LOCK = new Object();
    private static FileTime loadedModified;
    private static Map<String, String> byLocation = Collections.emptyMap();
    private static List<String> names = Collections.emptyList();

    private ServedTables() {}

    /** Every served name ({@code layer.name}, tables and views), in file order. */
    static List<String> names() {
        synchronized (LOCK) {
            load();
            return names;
        }
    }

    /** Location (normalised) -> {@code layer.name} of the served tables, in file order. */
    static Map<String, String> byLocation() {
        synchronized (LOCK) {
            load();
            return byLocation;
        }
    }

    private static void load() {
        String configured = System.getProperty(LakehouseThriftServer.REGISTRATIONS_PROPERTY);
        if (configured == null || configured.isEmpty()) {
            return;
        }
        Path file = Paths.get(configured);
        try {
            FileTime modified = Files.getLastModifiedTime(file);
            if (!modified.equals(loadedModified)) {
                Map<String, String> read = new LinkedHashMap<>();
                List<String> served = new ArrayList<>();
                for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                    String[] parts = line.split("\t");
                    if (parts.length == 4) {
                        served.add(parts[0].toLowerCase(Locale.ROOT));
                        // A view's line names the location its registration waits for, not its own.
                        if (parts[3].trim().toUpperCase(Locale.ROOT).startsWith("CREATE TABLE")) {
                            read.putIfAbsent(normalise(parts[1]), parts[0].toLowerCase(Locale.ROOT));
                        }
                    }
                }
                byLocation = Collections.unmodifiableMap(read);
                names = Collections.unmodifiableList(served);
                loadedModified = modified;
            }
        } catch (IOException e) {
            LakehouseThriftServer.log("WARN", "cannot read " + file + ": " + e);
        }
    }

    /** The served table at {@code location}, or null. */
    static String atLocation(String location) {
        return byLocation().get(normalise(location));
    }

    /** {@code scheme://authority/path} without a trailing slash; a path without a scheme is a local file. */
    static String normalise(String location) {
        URI uri = new org.apache.hadoop.fs.Path(location).toUri();
        String scheme = uri.getScheme() == null ? "file" : uri.getScheme().toLowerCase(Locale.ROOT);
        String authority = uri.getAuthority() == null ? "" : uri.getAuthority();
        String path = uri.getPath();
        while (path.length() > 1 && path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        return scheme + "://" + authority + path;
    }
}
