"""Convert the public CDNOW transaction log into an `orders` landing file.

CDNOW_master.txt (Fader & Hardie) is whitespace separated with a header line:
`customer_id date number_of_cds dollar_value`, date as YYYYMMDD. Each line becomes one order
with the contract's minimal columns: customer_id, ordered_at (date only), status `delivered`
and total. There is no order_id: ingestion derives it from the row, as for any transaction log.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.contract import source
from pipelines.core.warehouse import scratch
from pipelines.generate.writers import sql_string


def convert_cdnow(src: Path, out: Path) -> int:
    """Write `out/orders/cdnow.csv` from CDNOW_master.txt at `src`; return the number of orders."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"CDNOW file not found: {src}")
    target = out / "orders" / "cdnow.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(".cdnow.csv.tmp")
    wanted = ("customer_id", "ordered_at", "status", "total")
    # keep contract column order for the columns we fill
    columns = [c for c in source("orders").column_names if c in wanted]
    exprs = {
        "customer_id": "f[1]",
        "ordered_at": "strftime(strptime(f[2], '%Y%m%d'), '%Y-%m-%d')",
        "status": "'delivered'",
        "total": "CAST(f[4] AS DECIMAL(18, 2))",
    }
    select = ", ".join(f"{exprs[c]} AS {c}" for c in columns)
    # The columns are separated by runs of spaces, which the CSV reader cannot split: read
    # whole lines and split them on whitespace instead. Row order follows the file.
    sql = f"""
        SELECT {select}
        FROM (
            SELECT string_split_regex(trim(line), '\\s+') AS f
            FROM read_csv({sql_string(src)}, columns = {{'line': 'VARCHAR'}}, header = true, delim = '\\t',
                          quote = '', escape = '', auto_detect = false)
            WHERE trim(line) <> ''
        )
    """
    with scratch() as con:
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY ({sql}) TO {sql_string(tmp)} (FORMAT csv, HEADER true)")
        n = con.execute(f"SELECT count(*) FROM read_csv({sql_string(tmp)})").fetchone()[0]
    tmp.replace(target)
    return int(n)
