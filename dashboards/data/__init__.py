"""The dashboard's data access: every query the pages run, split by purpose.

- `connection`: the published snapshot (read-only, shared per path), short read-only
  connections to the warehouse, `query`, the snapshot's catalogue.
- `filters`: the filter model `Filters`, bound parameters, customer and order scopes, the
  sidebar's options.
- `frames`: month spines, ratios, month ranges.
- `kpis`: filtered KPIs, sums of `marts.kpi_monthly_cells` over the selected cells; `KPIS`
  turns sums into KPI values.
- `per_customer`: what cells cannot sum (returning-customer rate, cohorts, medians), from the
  marts' per-order, per-ticket and per-customer rows.
- `overview`, `retention`, `post_purchase`, `support`, `churn`, `outreach`, `customer_360`:
  one module per page, `<page>(con, filters) -> dict`.
- `lift`: the Outreach page's "Did it work?" section, from `marts.outreach_lift`.
- `model`: churn model status, metrics, calibration, driver importance.
- `downloads`: CRM files rendered from the warehouse when clicked (`retain export`'s code).
- `loaders`: `load(page, snapshot, filters)` and the other Streamlit-cached entry points, `PAGES`.

Views import what they use from these modules; this package re-exports nothing.
"""
