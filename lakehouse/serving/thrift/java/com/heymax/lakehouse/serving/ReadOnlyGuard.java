package com.heymax.lakehouse.serving;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.rules.Rule;
import scala.collection.Iterator;
import scala.Option;
import scala.Tuple2;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractFunction2;
import scala.runtime.BoxedUnit;

/**
 * A Spark SQL extension that makes every session of the server read-only.
 *
 * <p>Installed with {@code spark.sql.extensions} (a static setting: a client cannot unset it), it adds
 * a check rule that runs on the analyzed plan of every statement, before anything executes. A plan
 * is accepted when it is a query (no node of it is a command or a write), or when its root is a
 * read-only command: SHOW..., DESCRIBE... (DESCRIBE HISTORY included), EXPLAIN, SET / RESET of
 * session settings, USE. Everything else (INSERT, UPDATE, DELETE, MERGE, CREATE / REPLACE / DROP /
 * ALTER of tables and views, TRUNCATE, OPTIMIZE, VACUUM, RESTORE, CTAS, writes through
 * {@code delta.`path`}, ADD JAR, CACHE TABLE, INSERT OVERWRITE DIRECTORY ...) is refused with
 * {@link ReadOnlyException}. The rule is an allow-list: a statement form nobody thought of is a
 * command, and refused. Queries that would run something on the server are refused too: {@code
 * SELECT TRANSFORM(...) USING 'a program'} and {@code reflect} / {@code java_method} /
 * {@code try_reflect} (a static Java method such as {@code System.exit}).
 *
 * <p>Session settings that would change where or how data is read are refused too: {@code SET} of
 * a catalog ({@code spark.sql.catalog.*}: a JDBC catalog over Derby can write files and call Java),
 * of Hadoop file system settings ({@code spark.hadoop.*}), of file-path SQL, data sources, Delta or
 * legacy behaviour; and every statement is refused while the session holds such a setting that
 * differs from the server's (settings sent when the connection opens never pass through SET).
 * Reading files by path is refused by {@link PathReadGuard}, the parser this extension installs.
 *
 * <p>The same extension enforces the grants per user, table, column and row ({@link AccessGuard}).
 *
 * <p>The server's own table registration runs inside {@link #asAdministrator(Runnable)}, on the
 * server's thread, which no client statement can reach.
 */
public final class ReadOnlyGuard extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

    static final String MESSAGE_PREFIX = "This SQL endpoint is read-only";

    private static final ThreadLocal<Boolean> ADMINISTRATOR = ThreadLocal.withInitial(() -> Boolean.FALSE);

    /** Root commands that only read (exact simple class names; prefixes below). */
    private static final Set<String> READ_COMMANDS = new HashSet<>(Arrays.asList(
            "SetCommand", "ResetCommand", "SetCatalogAndNamespace", "SetNamespaceCommand",
            "SetCatalogCommand", "ExplainCommand"));

    private static final String[] READ_COMMAND_PREFIXES = {"Show", "Describe"};

    /** Session settings no client may change: where and how data is read, and by which code. */
    private static final String[] PROTECTED_SETTINGS = {
        "spark.sql.catalog", "spark.hadoop.", "spark.sql.runsqlonfiles", "spark.sql.sources.",
        "spark.databricks.", "spark.delta.", "spark.sql.extensions", "spark.sql.warehouse", "spark.jars",
        "spark.sql.legacy.", "spark.sql.hive.metastore", "spark.sql.scripting"};

    /** Of those, the ones whose presence in a session is checked at every statement. */
    private static final String[] SESSION_CHECKED_SETTINGS = {
        "spark.sql.catalog", "spark.hadoop.", "spark.sql.runsqlonfiles"};

    /** Plan nodes and expressions that run a program or a Java method on the server. */
    private static final String[] EXECUTION_WORDS = {"scripttransformation", "reflect"};

    /**
     * Plan nodes that write although they may not implement Command (Delta's own logical nodes
     * before they become commands, statements not yet resolved): matched on the class name.
     */
    private static final String[] WRITE_WORDS = {
        "insert", "update", "delete", "merge", "write", "create", "replace", "drop", "alter",
        "truncate", "optimize", "vacuum", "restore", "clone", "convert", "overwrite", "append",
        "cache", "refresh", "analyze", "addjar", "addfile", "addarchive", "rename", "repair", "comment"};

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(new AbstractFunction1<>() {
            @Override
            public scala.Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
                return new AbstractFunction1<>() {
                    @Override
                    public BoxedUnit apply(LogicalPlan plan) {
                        check(plan, session);
                        return BoxedUnit.UNIT;
                    }
                };
            }
        });
        // Grants (AccessGuard): row filters while the analyzer resolves, SHOW TABLES narrowed after it.
        extensions.injectResolutionRule(new AbstractFunction1<SparkSession, Rule<LogicalPlan>>() {
            @Override
            public Rule<LogicalPlan> apply(SparkSession session) {
                return new AccessGuard.RowFilters();
            }
        });
        extensions.injectPostHocResolutionRule(new AbstractFunction1<SparkSession, Rule<LogicalPlan>>() {
            @Override
            public Rule<LogicalPlan> apply(SparkSession session) {
                return new AccessGuard.ListingFilter();
            }
        });
        extensions.injectParser(new AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
            @Override
            public ParserInterface apply(SparkSession session, ParserInterface parser) {
                return new PathReadGuard(parser);
            }
        });
        return BoxedUnit.UNIT;
    }

    static boolean isAdministrator() {
        return ADMINISTRATOR.get();
    }

    static ReadOnlyException writeRefusal(String node) {
        return new ReadOnlyException(MESSAGE_PREFIX + ": the statement would change data or metadata ("
                + node + ") and was not run. Analysts' connections can read (SELECT, SHOW, DESCRIBE, "
                + "DESCRIBE HISTORY, VERSION AS OF / TIMESTAMP AS OF); tables are written by the "
                + "lakehouse jobs, and administrative operations (restore, maintenance) go through the "
                + "lakehouse command line, which takes the warehouse lock.");
    }

    private static boolean isProtected(String key, String[] prefixes) {
        String lower = key.toLowerCase(Locale.ROOT);
        for (String prefix : prefixes) {
            if (lower.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }

    /** A protected setting of the session that differs from the server's, or null. */
    static String changedSetting(SparkSession session) {
        SparkConf server = session.sparkContext().getConf();
        Iterator<Tuple2<String, String>> settings = session.conf().getAll().iterator();
        while (settings.hasNext()) {
            Tuple2<String, String> setting = settings.next();
            if (isProtected(setting._1(), SESSION_CHECKED_SETTINGS)) {
                Option<String> own = server.getOption(setting._1());
                if (own.isEmpty() || !own.get().equals(setting._2())) {
                    return setting._1();
                }
            }
        }
        return null;
    }

    /** Runs {@code body} on this thread with the guard lifted (the server's own registration). */
    public static void asAdministrator(Runnable body) {
        ADMINISTRATOR.set(Boolean.TRUE);
        try {
            body.run();
        } finally {
            ADMINISTRATOR.set(Boolean.FALSE);
        }
    }

    static void check(LogicalPlan plan, SparkSession session) {
        if (ADMINISTRATOR.get()) {
            return;
        }
        if (plan instanceof SetCommand) {
            Option<Tuple2<String, Option<String>>> kv = ((SetCommand) plan).kv();
            if (kv.isDefined() && kv.get()._2().isDefined() && isProtected(kv.get()._1(), PROTECTED_SETTINGS)) {
                throw new ReadOnlyException(MESSAGE_PREFIX + ": the setting " + kv.get()._1() + " cannot be changed "
                        + "on this endpoint (catalogs, file systems, data sources and Delta settings are the "
                        + "server's); session settings such as spark.sql.session.timeZone can.");
            }
        }
        String setting = changedSetting(session);
        if (setting != null) {
            throw new ReadOnlyException(MESSAGE_PREFIX + ": this session carries the setting " + setting
                    + ", which clients may not change; open a new connection without it.");
        }
        String runs = firstExecution(plan);
        if (runs != null) {
            throw new ReadOnlyException(MESSAGE_PREFIX + ": the statement would run a program or a Java method "
                    + "on the server (" + runs + ") and was not run.");
        }
        String refused = refusedNode(plan);
        if (refused != null) {
            throw writeRefusal(refused);
        }
        AccessGuard.check(plan, session);
    }

    /** The simple class name of the node that makes the plan a write, or null for a read. */
    static String refusedNode(LogicalPlan plan) {
        if (plan instanceof Filter && plan.getTagValue(AccessGuard.LISTING_FILTER).isDefined()) {
            plan = ((Filter) plan).child();  // SHOW TABLES narrowed to the user's grants
        }
        String root = plan.getClass().getSimpleName();
        if (READ_COMMANDS.contains(root)) {
            return null;
        }
        for (String prefix : READ_COMMAND_PREFIXES) {
            if (root.startsWith(prefix)) {
                return null;
            }
        }
        return firstWrite(plan);
    }

    private static final PlanWalk WRITES = new PlanWalk(
            node -> node instanceof Command || isWriteName(node.getClass().getSimpleName())
                    ? node.getClass().getSimpleName() : null,
            null, false);

    private static final PlanWalk EXECUTIONS = new PlanWalk(
            node -> matches(node.getClass().getSimpleName(), EXECUTION_WORDS) ? node.getClass().getSimpleName() : null,
            expression -> matches(expression.getClass().getSimpleName(), EXECUTION_WORDS)
                    ? expression.getClass().getSimpleName() : null,
            false);

    private static String firstWrite(LogicalPlan plan) {
        return WRITES.first(plan);
    }

    /** The node or expression (simple class name) that runs something on the server, or null. */
    static String firstExecution(LogicalPlan plan) {
        return EXECUTIONS.first(plan);
    }

    private static boolean matches(String simpleName, String[] words) {
        String lower = simpleName.toLowerCase(Locale.ROOT);
        for (String word : words) {
            if (lower.contains(word)) {
                return true;
            }
        }
        return false;
    }

    static boolean isWriteName(String simpleName) {
        return matches(simpleName, WRITE_WORDS);
    }
}
