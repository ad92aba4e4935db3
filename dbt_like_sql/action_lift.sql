-- Measured lift of each recommended action: its treated customers (the version's audiences) against its
-- control customers (in_control_group: same action, held out of every audience).
-- Grain: one row per (as_of, recommended_action) of a mature version: as_of at least
-- SEG_CHURN_HORIZON_DAYS before the version being built; versions not yet mature have no rows.
-- A build measures the versions that matured since the previous version was built (every
-- mature one when there is none), so the table grows as time passes.
-- rate = share of customers with a completed order in the horizon after as_of (as_of + 1 ..
-- as_of + horizon days); spend = completed spend per customer over those days.
-- lift = treated_rate - control_rate and spend_lift = treated_spend - control_spend, each with a
-- 95% normal-approximation interval: +- 1.96 x sqrt(treated variance / treated_customers +
-- control variance / control_customers) (p(1-p) for rates, the sample variance for spend);
-- null while a group has fewer than 2 customers. "No action" customers are in no audience:
-- their lift is a check that should stay near 0. A lift is only as real as the campaign run.

with previous_build as (
    select max(as_of) as previous_as_of
    from customer_segments
    where as_of < getvariable('as_of')
),

mature as (
    select distinct customer_segments.as_of
    from customer_segments
    cross join previous_build
    where customer_segments.as_of <= getvariable('as_of') - getvariable('churn_horizon_days')
      and (previous_build.previous_as_of is null
           or customer_segments.as_of > previous_build.previous_as_of - getvariable('churn_horizon_days'))
),

arms as (
    select as_of, customer_id, recommended_action, in_control_group
    from customer_segments
    where as_of in (select as_of from mature)
),

window_orders as (
    select customer_id, order_day, amount
    from orders
    where status = 'completed'
      and order_day > (select min(as_of) from mature)
      and order_day <= (select max(as_of) from mature) + getvariable('churn_horizon_days')
),

arm_orders as (
    select arms.as_of, arms.customer_id, count(*) as orders, sum(window_orders.amount) as spend
    from arms
    join window_orders
        on window_orders.customer_id = arms.customer_id
        and window_orders.order_day > arms.as_of
        and window_orders.order_day <= arms.as_of + getvariable('churn_horizon_days')
    group by arms.as_of, arms.customer_id
),

outcomes as (
    select
        arms.as_of,
        arms.recommended_action,
        arms.in_control_group,
        coalesce(arm_orders.orders, 0) > 0 as bought,
        coalesce(arm_orders.spend, 0) as spend
    from arms
    left join arm_orders using (as_of, customer_id)
),

groups as (
    select
        as_of,
        recommended_action,
        count(*) filter (where not in_control_group) as treated_customers,
        count(*) filter (where in_control_group) as control_customers,
        avg(bought::int) filter (where not in_control_group) as treated_rate,
        avg(bought::int) filter (where in_control_group) as control_rate,
        avg(spend) filter (where not in_control_group) as treated_spend,
        avg(spend) filter (where in_control_group) as control_spend,
        var_samp(spend) filter (where not in_control_group) as treated_spend_var,
        var_samp(spend) filter (where in_control_group) as control_spend_var
    from outcomes
    group by as_of, recommended_action
),

errors as (
    select
        *,
        treated_rate - control_rate as lift,
        case when least(treated_customers, control_customers) >= 2 then
            sqrt(treated_rate * (1 - treated_rate) / treated_customers
                 + control_rate * (1 - control_rate) / control_customers)
        end as lift_se,
        treated_spend - control_spend as spend_lift,
        case when least(treated_customers, control_customers) >= 2 then
            sqrt(treated_spend_var / treated_customers + control_spend_var / control_customers)
        end as spend_lift_se
    from groups
)

select
    as_of,
    recommended_action,
    treated_customers,
    control_customers,
    treated_rate,
    control_rate,
    lift,
    lift - 1.96 * lift_se as lift_low,
    lift + 1.96 * lift_se as lift_high,
    treated_spend,
    control_spend,
    spend_lift,
    spend_lift - 1.96 * spend_lift_se as spend_lift_low,
    spend_lift + 1.96 * spend_lift_se as spend_lift_high
from errors
order by as_of, recommended_action
