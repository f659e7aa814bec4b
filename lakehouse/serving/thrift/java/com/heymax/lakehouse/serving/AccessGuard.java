package com.heymax.lakehouse.serving;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.CurrentUserContext;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.ResolvedTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.HiveTableRelation;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.AttributeSet;
import org.apache.spark.sql.catalyst.expressions.Concat;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.In;
import org.apache.spark.sql.catalyst.expressions.Literal;
import org.apache.spark.sql.catalyst.expressions.Lower;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.parser.CatalystSqlParser$;
import org.apache.spark.sql.catalyst.plans.logical.Aggregate;
import org.apache.spark.sql.catalyst.plans.logical.CTERelationDef;
import org.apache.spark.sql.catalyst.plans.logical.CTERelationRef;
import org.apache.spark.sql.catalyst.plans.logical.Expand;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.catalyst.plans.logical.View;
import org.apache.spark.sql.catalyst.plans.logical.WithCTE;
import org.apache.spark.sql.catalyst.rules.Rule;
import org.apache.spark.sql.catalyst.trees.TreeNodeTag;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.execution.datasources.HadoopFsRelation;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;
import org.apache.spark.sql.types.DataTypes;
import scala.Option;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Grants per user, table, column and row (see {@link Grants}), enforced on the plans of the server's
 * sessions by the same extension as the read-only guard. The user is the one the Thrift server logged in
 * for the statement (it sets Spark's current-user context for every statement, whatever
 * {@code hive.server2.enable.doAs} says).
 *
 * <ul>
 * <li>{@link RowFilters} (an analyzer resolution rule): a table granted with a row filter is read as
 * {@code Filter(<where>, table)}, wherever it appears: in a view's body, a CTE, a subquery, a join, a
 * time-travel read. The analyzer resolves the condition against the table's columns.
 * <li>{@link #check} (a check rule, on the analysed plan before anything runs): every served table the
 * statement reads, in any node, subquery, CTE or view, must be granted to the user; every column of it
 * the statement reads (selects, filters, joins, groups, orders on, compares in a subquery) must be among
 * the granted ones (a column is refused, never silently dropped); a granted row filter must be in place.
 * Commands that name a table (DESCRIBE, SHOW COLUMNS, SHOW TBLPROPERTIES, DESCRIBE HISTORY / DETAIL)
 * need a grant of the table. The columns a statement reads are traced from its result back to the
 * tables through projections, aggregates and the nodes that pass their child's columns on; a node this
 * guard does not know counts every column of its input as read (it refuses too much, never too little).
 * <li>{@link ListingFilter} (a post-hoc resolution rule): {@code SHOW TABLES} lists only granted tables.
 * </ul>
 */
final class AccessGuard {

    static final String MESSAGE_PREFIX = "Access denied";

    /** On the Filter nodes of {@link RowFilters}: their condition is the grant's, not the user's. */
    static final TreeNodeTag<String> ROW_FILTER = TreeNodeTag.apply("lakehouse.rowFilter");
    /** On the Filter that {@link ListingFilter} puts above SHOW TABLES. */
    static final TreeNodeTag<String> LISTING_FILTER = TreeNodeTag.apply("lakehouse.listingFilter");

    /** Nodes whose output is their children's columns (some of them) plus, maybe, columns of their own. */
    private static final Set<String> PASS_THROUGH = new HashSet<>(Arrays.asList(
            "Filter", "Sort", "GlobalLimit", "LocalLimit", "Offset", "Tail", "SubqueryAlias", "View", "Join",
            "Window", "Generate", "Sample", "Repartition", "RepartitionByExpression", "RebalancePartitions",
            "ResolvedHint", "CTERelationDef", "WithWindowDefinition"));

    private AccessGuard() {}

    static String user() {
        return CurrentUserContext.CURRENT_USER().get();
    }

    private static AccessDeniedException denied(String user, String what) {
        return new AccessDeniedException(MESSAGE_PREFIX + ": user " + user + " " + what
                + " (an administrator grants with: lakehouse thrift grant USER layer.table; "
                + "lakehouse thrift grants USER lists the grants).");
    }

    // ------------------------------------------------------------------------------------------
    // Naming the served table behind a plan node
    // ------------------------------------------------------------------------------------------

    private static String name(String database, String table) {
        return (database + "." + table).toLowerCase(Locale.ROOT);
    }

    private static String nameOf(TableIdentifier identifier, SparkSession session) {
        String database = identifier.database().isDefined() ? identifier.database().get()
                : session.catalog().currentDatabase();
        return name(database, identifier.table());
    }

    private static String nameOf(Identifier identifier) {
        String[] namespace = identifier.namespace();
        return namespace.length == 0 ? null : name(namespace[namespace.length - 1], identifier.name());
    }

    /** A V2 table (Delta's DeltaTableV2): its catalog name, or the served table at its path. */
    private static String nameOf(Table table) {
        String name = table.name();
        if (name.startsWith("delta.`") && name.endsWith("`")) {
            return ServedTables.atLocation(name.substring(7, name.length() - 1));
        }
        String[] parts = name.replace("`", "").split("\\.");
        return parts.length < 2 ? null : name(parts[parts.length - 2], parts[parts.length - 1]);
    }

    /** The served table a relation node reads, or null when the node is not a table relation. */
    static String relationTable(LogicalPlan node) {
        if (node instanceof LogicalRelation) {
            LogicalRelation relation = (LogicalRelation) node;
            Option<CatalogTable> catalogTable = relation.catalogTable();
            if (catalogTable.isDefined()) {
                TableIdentifier identifier = catalogTable.get().identifier();
                if (identifier.database().isDefined()) {
                    return name(identifier.database().get(), identifier.table());
                }
            }
            if (relation.relation() instanceof HadoopFsRelation) {
                Iterator<org.apache.hadoop.fs.Path> roots =
                        ((HadoopFsRelation) relation.relation()).location().rootPaths().iterator();
                while (roots.hasNext()) {
                    String served = ServedTables.atLocation(roots.next().toString());
                    if (served != null) {
                        return served;
                    }
                }
            }
            return null;
        }
        if (node instanceof DataSourceV2Relation) {
            DataSourceV2Relation relation = (DataSourceV2Relation) node;
            if (relation.identifier().isDefined()) {
                String named = nameOf(relation.identifier().get());
                if (named != null) {
                    return named;
                }
            }
            return nameOf(relation.table());
        }
        if (node instanceof HiveTableRelation) {
            TableIdentifier identifier = ((HiveTableRelation) node).tableMeta().identifier();
            return identifier.database().isDefined() ? name(identifier.database().get(), identifier.table()) : null;
        }
        return null;
    }

    /** Served tables a command names (DESCRIBE, SHOW COLUMNS, DESCRIBE HISTORY ...): its arguments. */
    private static void namedTables(LogicalPlan node, SparkSession session, Set<String> into) {
        if (node instanceof View) {
            return;  // the view's own name is no table; what it reads is checked in its body
        }
        if (node instanceof ResolvedTable) {
            String named = nameOf(((ResolvedTable) node).identifier());
            if (named != null) {
                into.add(named);
            }
            return;
        }
        Iterator<Object> arguments = node.productIterator();
        while (arguments.hasNext()) {
            collectNamed(arguments.next(), session, into, 0);
        }
    }

    private static void collectNamed(Object value, SparkSession session, Set<String> into, int depth) {
        if (value == null || depth > 2 || value instanceof LogicalPlan || value instanceof Expression) {
            return;
        }
        String named = null;
        if (value instanceof TableIdentifier) {
            named = nameOf((TableIdentifier) value, session);
        } else if (value instanceof CatalogTable) {
            named = nameOf(((CatalogTable) value).identifier(), session);
        } else if (value instanceof Identifier) {
            named = nameOf((Identifier) value);
        } else if (value instanceof Table) {
            named = nameOf((Table) value);
        } else if (value instanceof org.apache.hadoop.fs.Path) {
            named = ServedTables.atLocation(value.toString());
        } else if (value instanceof Option) {
            Option<?> option = (Option<?>) value;
            if (option.isDefined()) {
                collectNamed(option.get(), session, into, depth + 1);
            }
        } else if (value instanceof scala.collection.Iterable) {
            Iterator<?> items = ((scala.collection.Iterable<?>) value).iterator();
            while (items.hasNext()) {
                collectNamed(items.next(), session, into, depth + 1);
            }
        }
        if (named != null) {
            into.add(named);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Row filters: an analyzer rule
    // ------------------------------------------------------------------------------------------

    /** Puts {@code Filter(<the grant's where>)} above every relation of a table granted with one. */
    static final class RowFilters extends Rule<LogicalPlan> {
        @Override
        public LogicalPlan apply(LogicalPlan plan) {
            String user = user();
            if (ReadOnlyGuard.isAdministrator() || user == null) {
                return plan;
            }
            return rewrite(plan, user, Grants.current());
        }

        private LogicalPlan rewrite(LogicalPlan node, String user, Grants grants) {
            if (node instanceof Filter && node.getTagValue(ROW_FILTER).isDefined()) {
                return node;  // filtered already (the rule runs until the plan stops changing)
            }
            String table = relationTable(node);
            if (table != null) {
                Grants.Grant grant = grants.resolve(user, table);
                if (grant == null || grant.where == null) {
                    return node;  // not granted: the check refuses it, with the table's name
                }
                Expression condition;
                try {
                    condition = CatalystSqlParser$.MODULE$.parseExpression(grant.where);
                } catch (Exception e) {  // ParseException, which Scala does not declare
                    throw new AccessDeniedException(MESSAGE_PREFIX + ": the row filter of user " + user + " on "
                            + table + " is not a valid SQL condition (" + grant.where + "): "
                            + e.getMessage().split("\n")[0] + "; fix it with lakehouse thrift grant.");
                }
                Filter filter = new Filter(condition, node);
                filter.setTagValue(ROW_FILTER, table);
                return filter;
            }
            List<LogicalPlan> children = CollectionConverters.asJava(node.children());
            List<LogicalPlan> rewritten = new ArrayList<>(children.size());
            boolean changed = false;
            for (LogicalPlan child : children) {
                LogicalPlan done = rewrite(child, user, grants);
                changed |= done != child;
                rewritten.add(done);
            }
            return changed ? node.withNewChildren(CollectionConverters.asScala(rewritten).toList()) : node;
        }
    }

    // ------------------------------------------------------------------------------------------
    // SHOW TABLES: only the granted tables
    // ------------------------------------------------------------------------------------------

    /** Puts a filter on the granted {@code layer.name} above SHOW TABLES / SHOW TABLE EXTENDED. */
    static final class ListingFilter extends Rule<LogicalPlan> {
        @Override
        public LogicalPlan apply(LogicalPlan plan) {
            String user = user();
            String root = plan.getClass().getSimpleName();
            if (ReadOnlyGuard.isAdministrator() || user == null || !root.startsWith("ShowTables")
                    || plan.getTagValue(LISTING_FILTER).isDefined()) {
                return plan;
            }
            Attribute namespace = null;
            Attribute tableName = null;
            for (Attribute attribute : CollectionConverters.asJava(plan.output())) {
                if (attribute.name().equalsIgnoreCase("namespace")) {
                    namespace = attribute;
                } else if (attribute.name().equalsIgnoreCase("tableName")) {
                    tableName = attribute;
                }
            }
            if (namespace == null || tableName == null) {
                return plan;
            }
            Grants grants = Grants.current();
            List<Expression> granted = new ArrayList<>();
            for (String table : ServedTables.names()) {
                if (grants.resolve(user, table) != null) {
                    granted.add(Literal.create(table, DataTypes.StringType));
                }
            }
            Expression condition = granted.isEmpty() ? Literal.create(false, DataTypes.BooleanType)
                    : new In(new Lower(new Concat(CollectionConverters.asScala(List.<Expression>of(
                            namespace, Literal.create(".", DataTypes.StringType), tableName)).toList())),
                            CollectionConverters.asScala(granted).toList());
            Filter filter = new Filter(condition, plan);
            filter.setTagValue(LISTING_FILTER, user);
            return filter;
        }
    }

    // ------------------------------------------------------------------------------------------
    // The check: tables, columns, row filters
    // ------------------------------------------------------------------------------------------

    static void check(LogicalPlan plan, SparkSession session) {
        if (ReadOnlyGuard.isAdministrator()) {
            return;
        }
        Reads reads = new Reads(session);
        reads.visit(plan, ids(plan.output()), false);
        if (reads.tables.isEmpty()) {
            return;
        }
        String user = user();
        if (user == null) {
            throw new AccessDeniedException(MESSAGE_PREFIX + ": no user is logged in for this statement, "
                    + "which reads " + String.join(", ", reads.tables.keySet()));
        }
        Grants grants = Grants.current();
        for (Map.Entry<String, TableRead> entry : reads.tables.entrySet()) {
            String table = entry.getKey();
            TableRead read = entry.getValue();
            Grants.Grant grant = grants.resolve(user, table);
            if (grant == null) {
                throw denied(user, "is not granted " + table + ", which this statement reads");
            }
            Set<String> refused = new TreeSet<>();
            for (String column : read.columns) {
                if (!grant.mayRead(column)) {
                    refused.add(column);
                }
            }
            if (!refused.isEmpty()) {
                throw denied(user, "may not read column" + (refused.size() > 1 ? "s " : " ")
                        + String.join(", ", refused) + " of " + table + " (granted: "
                        + String.join(", ", grant.columns) + "); name the granted columns instead of *");
            }
            if (grant.where != null && read.unfiltered) {
                throw denied(user, "reads " + table + " through a plan the row filter could not be added to; "
                        + "the statement was not run");
            }
        }
    }

    /** What a statement reads from one served table. */
    private static final class TableRead {
        final Set<String> columns = new LinkedHashSet<>();
        boolean unfiltered;
    }

    private static Set<Long> ids(scala.collection.Iterable<? extends Expression> attributes) {
        Set<Long> ids = new HashSet<>();
        Iterator<? extends Expression> it = attributes.iterator();
        while (it.hasNext()) {
            Expression attribute = it.next();
            if (attribute instanceof Attribute) {
                ids.add(((Attribute) attribute).exprId().id());
            }
        }
        return ids;
    }

    private static Set<Long> intersect(Set<Long> needed, LogicalPlan child) {
        Set<Long> out = ids(child.output());
        out.retainAll(needed);
        return out;
    }

    /**
     * A walk from the statement's result down to its tables, carrying the columns (expression ids) each
     * node's parent needs from it; at a table relation, those are the columns the statement reads.
     */
    private static final class Reads {
        final SparkSession session;
        final Map<String, TableRead> tables = new LinkedHashMap<>();
        /** CTE id -> positions of its output that some reference needs. */
        final Map<Long, Set<Integer>> cteNeeded = new HashMap<>();

        Reads(SparkSession session) {
            this.session = session;
        }

        void visit(LogicalPlan node, Set<Long> needed, boolean rowFiltered) {
            String table = relationTable(node);
            if (table != null) {
                TableRead read = tables.computeIfAbsent(table, t -> new TableRead());
                for (Attribute attribute : CollectionConverters.asJava(node.output())) {
                    if (needed.contains(attribute.exprId().id())) {
                        read.columns.add(attribute.name().toLowerCase(Locale.ROOT));
                    }
                }
                read.unfiltered |= !rowFiltered;
                return;
            }
            Set<String> named = new LinkedHashSet<>();
            namedTables(node, session, named);
            for (String name : named) {
                if (ServedTables.names().contains(name)) {
                    tables.computeIfAbsent(name, t -> new TableRead());  // metadata: the table must be granted
                }
            }
            if (node instanceof CTERelationRef) {
                CTERelationRef ref = (CTERelationRef) node;
                Set<Integer> positions = cteNeeded.computeIfAbsent(ref.cteId(), id -> new HashSet<>());
                List<Attribute> output = CollectionConverters.asJava(ref.output());
                for (int i = 0; i < output.size(); i++) {
                    if (needed.contains(output.get(i).exprId().id())) {
                        positions.add(i);
                    }
                }
                return;
            }
            boolean ours = node instanceof Filter && node.getTagValue(ROW_FILTER).isDefined();
            Set<Long> own = ours ? new HashSet<>() : ids(node.references());
            // Subqueries in the node's expressions: all their output is used by the expression.
            for (Expression expression : CollectionConverters.asJava(node.expressions())) {
                visitSubqueries(expression);
            }
            if (node instanceof WithCTE) {
                WithCTE with = (WithCTE) node;
                visit(with.plan(), intersect(needed, with.plan()), false);
                List<CTERelationDef> defs = CollectionConverters.asJava(with.cteDefs());
                for (int i = defs.size() - 1; i >= 0; i--) {
                    CTERelationDef def = defs.get(i);
                    Set<Integer> positions = cteNeeded.getOrDefault(def.id(), new HashSet<>());
                    List<Attribute> output = CollectionConverters.asJava(def.output());
                    Set<Long> defNeeded = new HashSet<>();
                    for (int position : positions) {
                        if (position < output.size()) {
                            defNeeded.add(output.get(position).exprId().id());
                        }
                    }
                    visit(def, defNeeded, false);
                }
                return;
            }
            if (node instanceof Project) {
                own = neededReferences(((Project) node).projectList(), needed);
            } else if (node instanceof Aggregate) {
                Aggregate aggregate = (Aggregate) node;
                own = ids(AttributeSet.apply(aggregate.groupingExpressions()));  // the groups shape every row
                own.addAll(neededReferences(aggregate.aggregateExpressions(), needed));
            }
            String kind = node.getClass().getSimpleName();
            for (LogicalPlan child : CollectionConverters.asJava(node.children())) {
                Set<Long> childNeeded;
                if (node instanceof Project || node instanceof Aggregate || node instanceof Expand) {
                    childNeeded = intersect(own, child);  // the output is made of these expressions
                } else if (PASS_THROUGH.contains(kind)) {
                    Set<Long> both = new HashSet<>(needed);
                    both.addAll(own);
                    childNeeded = intersect(both, child);
                } else {
                    childNeeded = ids(child.output());  // unknown: every column counts as read
                }
                visit(child, childNeeded, ours);
            }
        }

        /** What the expressions whose result the parent needs refer to. */
        private static Set<Long> neededReferences(scala.collection.Seq<? extends NamedExpression> expressions,
                Set<Long> needed) {
            Set<Long> out = new HashSet<>();
            for (NamedExpression expression : CollectionConverters.asJava(expressions)) {
                if (needed.contains(expression.exprId().id())) {
                    out.addAll(ids(((Expression) expression).references()));
                }
            }
            return out;
        }

        private void visitSubqueries(Expression expression) {
            if (expression instanceof SubqueryExpression) {
                LogicalPlan plan = ((SubqueryExpression) expression).plan();
                visit(plan, ids(plan.output()), false);
            }
            for (Expression child : CollectionConverters.asJava(expression.children())) {
                visitSubqueries(child);
            }
        }
    }
}
