-- The most valuable customers most likely to churn: who to call first.
-- Grain: one row per (as_of, customer_id); at most 100 customers per version.
-- Platinum and gold customers (value tiers) with churn_risk >= 0.5, ranked by
-- revenue_at_risk = churn_risk x trailing 12-month spend (spend_365d), then churn_risk.
-- Each with churn_reasons (why the model rates them at risk), p_alive, next_order_date and the CLV interval.
-- Ids, scores and segments only: no personal data.

with top_tier as (
    select *
    from customer_segments
    where as_of = getvariable('as_of')
      and value_tier in ('platinum', 'gold')
      and churn_risk >= 0.5
),

activity as (
    select customer_id, spend_365d, days_since_last_order, order_count
    from customer_features
    where as_of = getvariable('as_of')
),

at_risk as (
    select
        top_tier.as_of,
        top_tier.customer_id,
        top_tier.value_tier,
        top_tier.rfm_segment,
        top_tier.lifecycle_stage,
        top_tier.churn_risk,
        activity.spend_365d,
        top_tier.churn_risk * coalesce(activity.spend_365d, 0) as revenue_at_risk,
        top_tier.churn_reasons,
        top_tier.p_alive,
        top_tier.next_order_date,
        top_tier.clv,
        top_tier.clv_low,
        top_tier.clv_high,
        top_tier.expected_purchases_12m,
        activity.days_since_last_order,
        activity.order_count,
        top_tier.recommended_action
    from top_tier
    left join activity using (customer_id)
)

select
    as_of,
    row_number() over (order by revenue_at_risk desc, churn_risk desc, customer_id) as watch_rank,
    * exclude (as_of)
from at_risk
qualify watch_rank <= 100
order by watch_rank
