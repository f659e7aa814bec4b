package com.heymax.lakehouse.serving;

import java.util.function.Function;

import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.plans.QueryPlan;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import scala.collection.Iterator;

/**
 * A depth-first search of a logical plan for the first node (and optionally expression) a test
 * names: the one tree walk of the guards. The test returns a description of what it found, or null.
 */
final class PlanWalk {

    private final Function<LogicalPlan, String> nodeTest;
    /** Null: the nodes' expressions (and the plans of their subqueries) are not searched. */
    private final Function<Expression, String> expressionTest;
    /** Also search inner children (the CTE definitions of a WITH node). */
    private final boolean innerChildren;

    PlanWalk(Function<LogicalPlan, String> nodeTest, Function<Expression, String> expressionTest,
            boolean innerChildren) {
        this.nodeTest = nodeTest;
        this.expressionTest = expressionTest;
        this.innerChildren = innerChildren;
    }

    String first(LogicalPlan node) {
        String found = nodeTest.apply(node);
        if (found != null) {
            return found;
        }
        if (expressionTest != null) {
            Iterator<Expression> expressions = node.expressions().iterator();
            while (found == null && expressions.hasNext()) {
                found = first(expressions.next());
            }
        }
        Iterator<LogicalPlan> children = node.children().iterator();
        while (found == null && children.hasNext()) {
            found = first(children.next());
        }
        if (innerChildren) {
            Iterator<QueryPlan<?>> inner = node.innerChildren().iterator();
            while (found == null && inner.hasNext()) {
                QueryPlan<?> plan = inner.next();
                if (plan instanceof LogicalPlan) {
                    found = first((LogicalPlan) plan);
                }
            }
        }
        return found;
    }

    private String first(Expression expression) {
        String found = expressionTest.apply(expression);
        if (found == null && expression instanceof SubqueryExpression) {
            found = first(((SubqueryExpression) expression).plan());
        }
        Iterator<Expression> children = expression.children().iterator();
        while (found == null && children.hasNext()) {
            found = first(children.next());
        }
        return found;
    }
}
