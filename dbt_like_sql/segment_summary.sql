-- Size and value of every segment in one segment version.
-- Grain: one row per (as_of, segment_type, segment); segment_type is rfm_segment,
-- cluster_label, value_tier or lifecycle_stage, and segment '(none)' holds customers
-- without one (prospects have no value tier).
-- revenue = trailing 12-month completed spend (customer_features.spend_365d);
-- customer_share and revenue_share are within (as_of, segment_type) and sum to 1.

with segments as (
    select *
    from customer_segments
    where as_of = getvariable('as_of')
),

revenue as (
    select customer_id, spend_365d
    from customer_features
    where as_of = getvariable('as_of')
),

customers as (
    select
        segments.*,
        coalesce(revenue.spend_365d, 0) as revenue
    from segments
    left join revenue using (customer_id)
),

-- one row per customer and segment type
assignments as (
    select 'rfm_segment' as segment_type, rfm_segment as segment, * from customers
    union all
    select 'cluster_label', cluster_label, * from customers
    union all
    select 'value_tier', value_tier, * from customers
    union all
    select 'lifecycle_stage', lifecycle_stage, * from customers
),

segment_totals as (
    select
        as_of,
        any_value(segment_version) as segment_version,
        segment_type,
        coalesce(segment, '(none)') as segment,
        count(*) as customers,
        sum(revenue) as revenue,
        avg(churn_risk) as mean_churn_risk,
        avg(clv) as mean_clv
    from assignments
    group by as_of, segment_type, coalesce(segment, '(none)')
)

select
    as_of,
    segment_version,
    segment_type,
    segment,
    customers,
    customers / sum(customers) over (partition by segment_type) as customer_share,
    revenue,
    revenue / nullif(sum(revenue) over (partition by segment_type), 0) as revenue_share,
    revenue / customers as revenue_per_customer,
    mean_churn_risk,
    mean_clv
from segment_totals
order by segment_type, customers desc, segment
