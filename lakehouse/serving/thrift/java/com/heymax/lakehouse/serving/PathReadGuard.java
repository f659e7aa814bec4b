package com.heymax.lakehouse.serving;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.UnresolvedRelation;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.parser.ParameterContext;
import org.apache.spark.sql.catalyst.parser.ParseException;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;
import scala.collection.immutable.Seq;

/**
 * The SQL parser of the server's sessions, wrapping Delta's: a client statement that names a file
 * path as a table ({@code text.`/etc/passwd`}, {@code csv.`...`}, {@code delta.`/warehouse/...`}) is
 * refused here, before analysis: the endpoint serves the registered tables only, so no client reads
 * files of the server (its users file included). A write through a path gets the read-only message.
 *
 * <p>Only SQL text goes through a parser: Delta's own reads of its log and data files (DataFrames
 * built in code) are not affected.
 */
final class PathReadGuard implements ParserInterface {

    private static final Set<String> FILE_SOURCES = new HashSet<>(Arrays.asList(
            "text", "csv", "json", "parquet", "orc", "avro", "delta", "binaryfile", "xml", "jdbc", "hive"));

    private final ParserInterface delegate;

    PathReadGuard(ParserInterface delegate) {
        this.delegate = delegate;
    }

    private LogicalPlan checked(LogicalPlan plan) {
        String path = firstPathRelation(plan);
        if (path == null) {
            return plan;
        }
        if (ReadOnlyGuard.isAdministrator()) {
            return plan;
        }
        String write = ReadOnlyGuard.refusedNode(plan);
        if (write != null) {
            throw ReadOnlyGuard.writeRefusal(write);
        }
        throw new ReadOnlyException("This SQL endpoint serves the registered tables only: reading files by path ("
                + path + ") is refused. Query the tables by name (SHOW TABLES IN bronze / silver / gold / ops); "
                + "time travel works on them (VERSION AS OF, TIMESTAMP AS OF).");
    }

    /** Tables named by a file path, in CTE definitions and subqueries too. */
    private static final PlanWalk PATH_RELATIONS = new PlanWalk(PathReadGuard::pathOf, expression -> null, true);

    /** {@code format.`path`} of the first table named by a file path, or null. */
    static String firstPathRelation(LogicalPlan plan) {
        return PATH_RELATIONS.first(plan);
    }

    private static String pathOf(LogicalPlan node) {
        if (node instanceof UnresolvedRelation) {
            Seq<String> parts = ((UnresolvedRelation) node).multipartIdentifier();
            if (parts.size() == 2 && isFileSource(parts.apply(0)) && looksLikePath(parts.apply(1))) {
                return parts.apply(0) + ".`" + parts.apply(1) + "`";
            }
        }
        return null;
    }

    private static boolean isFileSource(String name) {
        String lower = name.toLowerCase(Locale.ROOT);
        return FILE_SOURCES.contains(lower) || lower.contains(".");
    }

    private static boolean looksLikePath(String name) {
        return name.contains("/") || name.contains(":") || name.contains("\\");
    }

    @Override
    public LogicalPlan parsePlan(String sqlText) throws ParseException {
        return checked(delegate.parsePlan(sqlText));
    }

    @Override
    public LogicalPlan parsePlanWithParameters(String sqlText, ParameterContext context) throws ParseException {
        return checked(delegate.parsePlanWithParameters(sqlText, context));
    }

    @Override
    public LogicalPlan parseQuery(String sqlText) throws ParseException {
        return checked(delegate.parseQuery(sqlText));
    }

    @Override
    public Expression parseExpression(String sqlText) throws ParseException {
        return delegate.parseExpression(sqlText);
    }

    @Override
    public TableIdentifier parseTableIdentifier(String sqlText) throws ParseException {
        return delegate.parseTableIdentifier(sqlText);
    }

    @Override
    public FunctionIdentifier parseFunctionIdentifier(String sqlText) throws ParseException {
        return delegate.parseFunctionIdentifier(sqlText);
    }

    @Override
    public Seq<String> parseMultipartIdentifier(String sqlText) throws ParseException {
        return delegate.parseMultipartIdentifier(sqlText);
    }

    @Override
    public StructType parseRoutineParam(String sqlText) throws ParseException {
        return delegate.parseRoutineParam(sqlText);
    }

    @Override
    public StructType parseTableSchema(String sqlText) throws ParseException {
        return delegate.parseTableSchema(sqlText);
    }

    @Override
    public DataType parseDataType(String sqlText) throws ParseException {
        return delegate.parseDataType(sqlText);
    }
}
