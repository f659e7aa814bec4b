package com.heymax.lakehouse.serving;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Who may read what: the grants file ({@code <state dir>/auth/grants.json}, system property
 * {@value #GRANTS_FILE_PROPERTY}), written by {@code lakehouse thrift grant / revoke} (and by hand):
 *
 * <pre>{"users": {"maria": [{"object": "gold.*"},
 *                          {"object": "silver.dim_users", "columns": ["user_id", "country"],
 *                           "where": "country = 'SG'"}]}}</pre>
 *
 * <p>A table {@code layer.name} is granted to a user by an entry for that table, else by an entry
 * {@code layer.*}; the table's own entry wins, so a layer can be granted whole and one of its tables
 * narrowed. A restricted table (one that holds user ids: system property {@value #RESTRICTED_PROPERTY}, the
 * registry's list, comma-separated) is granted by its own entry only: a layer's {@code *} never includes it. {@code columns} (absent: all) are the columns the user may read; {@code where} (absent: every
 * row) is a Spark SQL condition on the table's columns that the guard adds as a filter ({@code
 * current_user()} allowed). A wildcard entry takes neither. A user with no entry reads nothing.
 *
 * <p>The rules are the ones of {@code lakehouse/serving/thrift/grants.py} (the command line's copy, checked
 * against this one by a test through {@link #main}). The file is read again when it changes; a malformed
 * file is reported in the server log and the grants loaded before are kept.
 */
final class Grants {

    static final String GRANTS_FILE_PROPERTY = "lakehouse.thrift.grants";
    static final String RESTRICTED_PROPERTY = "lakehouse.thrift.restricted";

    /** The restricted tables ({@code layer.name}, lower case), from {@value #RESTRICTED_PROPERTY}. */
    static Set<String> restricted() {
        Set<String> names = new java.util.HashSet<>();
        for (String name : System.getProperty(RESTRICTED_PROPERTY, "").split(",")) {
            if (!name.isBlank()) {
                names.add(name.trim().toLowerCase(Locale.ROOT));
            }
        }
        return Collections.unmodifiableSet(names);
    }

    private static final Set<String> RESTRICTED = restricted();

    private static final Pattern USER = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    private static final Pattern IDENTIFIER = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");
    private static final Pattern OBJECT = Pattern.compile("([A-Za-z_][A-Za-z0-9_]*)\\.([A-Za-z_][A-Za-z0-9_]*|\\*)");
    private static final Set<String> TOP_KEYS = Set.of("version", "users");
    private static final Set<String> ENTRY_KEYS = Set.of("object", "columns", "where");

    /** One table's grant for one user: null columns = all columns, null where = all rows. */
    static final class Grant {
        final String object;
        final Set<String> columns;
        final String where;

        Grant(String object, Set<String> columns, String where) {
            this.object = object;
            this.columns = columns;
            this.where = where;
        }

        boolean mayRead(String column) {
            return columns == null || columns.contains(column.toLowerCase(Locale.ROOT));
        }
    }

    /** A grants file that cannot be used; the message says where and why. */
    static final class MalformedGrants extends Exception {
        private static final long serialVersionUID = 1L;

        MalformedGrants(String message) {
            super(message);
        }
    }

    static final Grants NONE = new Grants(Collections.emptyMap());

    private final Map<String, Map<String, Grant>> byUser;

    private Grants(Map<String, Map<String, Grant>> byUser) {
        this.byUser = byUser;
    }

    /** The grant that lets {@code user} read {@code table} ({@code layer.name}), or null. */
    Grant resolve(String user, String table) {
        Map<String, Grant> entries = user == null ? null : byUser.get(user);
        if (entries == null) {
            return null;
        }
        String name = table.toLowerCase(Locale.ROOT);
        Grant exact = entries.get(name);
        if (exact != null) {
            return exact;
        }
        int dot = name.indexOf('.');
        return dot < 0 || RESTRICTED.contains(name) ? null : entries.get(name.substring(0, dot) + ".*");
    }

    static Grants parse(String text) throws MalformedGrants {
        JsonNode root;
        try {
            ObjectMapper mapper = new ObjectMapper();
            mapper.enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
            root = mapper.readTree(text);
        } catch (JsonProcessingException e) {
            throw new MalformedGrants("not valid JSON: " + e.getOriginalMessage() + " (line "
                    + (e.getLocation() == null ? "?" : e.getLocation().getLineNr()) + ")");
        }
        if (root == null || !root.isObject()) {
            throw new MalformedGrants("the file must hold a JSON object with a \"users\" key");
        }
        for (Iterator<String> keys = root.fieldNames(); keys.hasNext(); ) {
            String key = keys.next();
            if (!TOP_KEYS.contains(key)) {
                throw new MalformedGrants("unknown key \"" + key + "\" (known: users, version)");
            }
        }
        JsonNode version = root.get("version");
        if (version != null && !(version.isInt() && version.asInt() == 1)) {
            throw new MalformedGrants("version: must be 1");
        }
        JsonNode users = root.get("users");
        if (users == null || !users.isObject()) {
            throw new MalformedGrants("users: must be an object of user name -> list of grants");
        }
        Map<String, Map<String, Grant>> byUser = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = users.fields(); it.hasNext(); ) {  // fields(): Jackson 2.x
            Map.Entry<String, JsonNode> user = it.next();
            String where = "users." + user.getKey();
            if (!USER.matcher(user.getKey()).matches()) {
                throw new MalformedGrants(where + ": not a valid user name");
            }
            if (!user.getValue().isArray()) {
                throw new MalformedGrants(where + ": must be a list of grants");
            }
            Map<String, Grant> entries = new HashMap<>();
            for (int i = 0; i < user.getValue().size(); i++) {
                Grant grant = entry(user.getValue().get(i), where + "[" + i + "]");
                if (entries.put(grant.object, grant) != null) {
                    throw new MalformedGrants(where + "[" + i + "]: " + grant.object + " is granted twice");
                }
            }
            byUser.put(user.getKey(), entries);
        }
        return new Grants(byUser);
    }

    private static Grant entry(JsonNode node, String where) throws MalformedGrants {
        if (!node.isObject()) {
            throw new MalformedGrants(where + ": must be an object with \"object\" (and \"columns\", \"where\")");
        }
        for (Iterator<String> keys = node.fieldNames(); keys.hasNext(); ) {
            String key = keys.next();
            if (!ENTRY_KEYS.contains(key)) {
                throw new MalformedGrants(where + ": unknown key \"" + key + "\" (known: object, columns, where)");
            }
        }
        JsonNode object = node.get("object");
        if (object == null || !object.isTextual() || !OBJECT.matcher(object.asText()).matches()) {
            throw new MalformedGrants(where + ".object: must be \"layer.table\" or \"layer.*\"");
        }
        String name = object.asText().toLowerCase(Locale.ROOT);
        boolean wildcard = name.endsWith(".*");
        Set<String> columns = null;
        JsonNode columnsNode = node.get("columns");
        if (columnsNode != null) {
            if (wildcard) {
                throw new MalformedGrants(where + ".columns: a layer.* grant takes no columns (grant the table)");
            }
            if (!columnsNode.isArray() || columnsNode.size() == 0) {
                throw new MalformedGrants(where + ".columns: must be a non-empty list of column names");
            }
            columns = new LinkedHashSet<>();
            for (JsonNode column : columnsNode) {
                if (!column.isTextual() || !IDENTIFIER.matcher(column.asText()).matches()) {
                    throw new MalformedGrants(where + ".columns: " + column + " is not a column name");
                }
                if (!columns.add(column.asText().toLowerCase(Locale.ROOT))) {
                    throw new MalformedGrants(where + ".columns: " + column + " is listed twice");
                }
            }
            columns = Collections.unmodifiableSet(columns);
        }
        String condition = null;
        JsonNode whereNode = node.get("where");
        if (whereNode != null) {
            if (wildcard) {
                throw new MalformedGrants(where + ".where: a layer.* grant takes no row filter (grant the table)");
            }
            if (!whereNode.isTextual() || whereNode.asText().isBlank()) {
                throw new MalformedGrants(where + ".where: must be a non-empty SQL condition");
            }
            condition = whereNode.asText();
        }
        return new Grant(name, columns, condition);
    }

    // ------------------------------------------------------------------------------------------
    // The file, read again when it changes
    // ------------------------------------------------------------------------------------------

    private static final Object LOCK = new Object();
    private static Object loadedVersion;
    private static Grants loaded = NONE;

    /** The grants of the file named by the system property; NONE when it is not set or missing. */
    static Grants current() {
        String configured = System.getProperty(GRANTS_FILE_PROPERTY);
        if (configured == null || configured.isEmpty()) {
            return NONE;
        }
        Path path = Paths.get(configured);
        synchronized (LOCK) {
            Object version;
            try {
                BasicFileAttributes attributes = Files.readAttributes(path, BasicFileAttributes.class);
                version = List.of(String.valueOf(attributes.fileKey()), attributes.lastModifiedTime(), attributes.size());
            } catch (IOException e) {
                version = "missing";
            }
            if (Objects.equals(version, loadedVersion)) {
                return loaded;
            }
            loadedVersion = version;
            if ("missing".equals(version)) {
                LakehouseThriftServer.log("WARN", "no grants file " + path + ": nobody reads any table");
                loaded = NONE;
                return loaded;
            }
            try {
                loaded = parse(new String(Files.readAllBytes(path), StandardCharsets.UTF_8));
                LakehouseThriftServer.log("grants loaded from " + path);
            } catch (IOException | MalformedGrants e) {
                // Kept: a half-edited file must not lock everyone out, nor open anything up.
                LakehouseThriftServer.log("ERROR", "the grants file " + path + " is malformed, the grants loaded "
                        + "before stay in force: " + e.getMessage());
            }
            return loaded;
        }
    }

    /**
     * The command-line twin's test: {@code java ... Grants FILE [MORE_FILES...]} prints {@code MALFORMED TAB
     * file TAB message} or {@code OK TAB file} for each file, then reads lines {@code user TAB table} from
     * standard input and prints, for each, resolved against the first file: {@code user TAB table TAB -} (not
     * granted) or {@code user TAB table TAB columns-or-* TAB where-or-empty}.
     */
    public static void main(String[] args) throws IOException {
        Grants first = NONE;
        for (int i = 0; i < args.length; i++) {
            try {
                Grants grants = parse(new String(Files.readAllBytes(Paths.get(args[i])), StandardCharsets.UTF_8));
                first = i == 0 ? grants : first;
                System.out.println("OK\t" + args[i]);
            } catch (MalformedGrants e) {
                System.out.println("MALFORMED\t" + args[i] + "\t" + e.getMessage());
            }
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        List<String> out = new ArrayList<>();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            String[] query = line.split("\t", -1);
            Grant grant = first.resolve(query[0], query[1]);
            out.add(query[0] + "\t" + query[1] + "\t" + (grant == null ? "-"
                    : (grant.columns == null ? "*" : String.join(",", grant.columns)) + "\t"
                    + (grant.where == null ? "" : grant.where)));
        }
        out.forEach(System.out::println);
    }
}
