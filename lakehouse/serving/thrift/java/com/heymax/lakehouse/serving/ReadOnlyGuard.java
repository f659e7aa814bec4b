package com.heymax.lakehouse.serving;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import scala.collection.Iterator;
import scala.runtime.AbstractFunction1;
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
            public scala.Function1<LogicalPlan, BoxedUnit> apply(org.apache.spark.sql.SparkSession session) {
                return new AbstractFunction1<>() {
                    @Override
                    public BoxedUnit apply(LogicalPlan plan) {
                        check(plan);
                        return BoxedUnit.UNIT;
                    }
                };
            }
        });
        return BoxedUnit.UNIT;
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

    static void check(LogicalPlan plan) {
        if (ADMINISTRATOR.get()) {
            return;
        }
        String runs = firstExecution(plan);
        if (runs != null) {
            throw new ReadOnlyException(MESSAGE_PREFIX + ": the statement would run a program or a Java method "
                    + "on the server (" + runs + ") and was not run.");
        }
        String refused = refusedNode(plan);
        if (refused != null) {
            throw new ReadOnlyException(MESSAGE_PREFIX + ": the statement would change data or metadata ("
                    + refused + ") and was not run. Analysts' connections can read (SELECT, SHOW, DESCRIBE, "
                    + "DESCRIBE HISTORY, VERSION AS OF / TIMESTAMP AS OF); tables are written by the "
                    + "lakehouse jobs, and administrative operations (restore, maintenance) go through the "
                    + "lakehouse command line, which takes the warehouse lock.");
        }
    }

    /** The simple class name of the node that makes the plan a write, or null for a read. */
    static String refusedNode(LogicalPlan plan) {
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

    private static String firstWrite(LogicalPlan node) {
        String name = node.getClass().getSimpleName();
        if (node instanceof Command || isWriteName(name)) {
            return name;
        }
        Iterator<LogicalPlan> children = node.children().iterator();
        while (children.hasNext()) {
            String found = firstWrite(children.next());
            if (found != null) {
                return found;
            }
        }
        return null;
    }

    /** The node or expression (simple class name) that runs something on the server, or null. */
    static String firstExecution(LogicalPlan node) {
        if (matches(node.getClass().getSimpleName(), EXECUTION_WORDS)) {
            return node.getClass().getSimpleName();
        }
        Iterator<Expression> expressions = node.expressions().iterator();
        while (expressions.hasNext()) {
            String found = firstExecution(expressions.next());
            if (found != null) {
                return found;
            }
        }
        Iterator<LogicalPlan> children = node.children().iterator();
        while (children.hasNext()) {
            String found = firstExecution(children.next());
            if (found != null) {
                return found;
            }
        }
        return null;
    }

    private static String firstExecution(Expression expression) {
        if (matches(expression.getClass().getSimpleName(), EXECUTION_WORDS)) {
            return expression.getClass().getSimpleName();
        }
        if (expression instanceof SubqueryExpression) {
            String found = firstExecution(((SubqueryExpression) expression).plan());
            if (found != null) {
                return found;
            }
        }
        Iterator<Expression> children = expression.children().iterator();
        while (children.hasNext()) {
            String found = firstExecution(children.next());
            if (found != null) {
                return found;
            }
        }
        return null;
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
