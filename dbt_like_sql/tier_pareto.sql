-- Revenue concentration (Pareto curve) of one version: what share of revenue the top
-- p% of buyers bring, for p = 1..100.
-- Grain: one row per (as_of, percentile); no rows when the version has no buyers.
-- Buyers = customers with at least one completed order (spend_365d not null, the value
-- tiers' population), ranked like the value tiers: trailing 12-month spend (spend_365d)
-- descending, then customer_id. The top p% = the first round(p/100 * buyers) of them.
-- Their revenue does not depend on the order among equal spends, so the running sum
-- sorts by spend alone (a sort on one number, not on number and text).
-- top20_revenue_share (the same on every row of a version) is the 80/20 check: the
-- revenue share of the top 20% of buyers, as in the value tier metrics.

with buyers as (
    select customer_id, spend_365d
    from customer_features
    where as_of = getvariable('as_of')
      and spend_365d is not null
),

ranked as (
    select
        row_number() over by_spend as buyer_rank,
        sum(spend_365d) over by_spend as cumulative_revenue
    from buyers
    window by_spend as (order by spend_365d desc rows between unbounded preceding and current row)
),

totals as (
    select count(*) as buyers, sum(spend_365d) as total_revenue
    from buyers
),

percentiles as (
    select
        percentile,
        cast(floor(percentile / 100 * totals.buyers + 0.5) as bigint) as top_customers
    from range(1, 101) as steps(percentile)
    cross join totals
    where totals.buyers > 0
),

curve as (
    select
        percentiles.percentile,
        percentiles.top_customers,
        coalesce(ranked.cumulative_revenue, 0) as cumulative_revenue
    from percentiles
    left join ranked on ranked.buyer_rank = percentiles.top_customers
)

select
    getvariable('as_of') as as_of,
    curve.percentile,
    curve.percentile / 100 as customer_share,
    curve.top_customers,
    totals.buyers,
    curve.cumulative_revenue,
    totals.total_revenue,
    curve.cumulative_revenue / nullif(totals.total_revenue, 0) as revenue_share,
    max(case when curve.percentile = 20 then curve.cumulative_revenue end) over ()
        / nullif(totals.total_revenue, 0) as top20_revenue_share
from curve
cross join totals
order by curve.percentile
