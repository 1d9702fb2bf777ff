"""A realistic graded task (sales summary, two rounds) and the replies a good model would give.

Used by the end-to-end tests and the benchmarks. Round 1 must fetch its data.csv
attachment and show the total; round 2 adds a per-product table with edit blocks.
"""

from __future__ import annotations

from tests.conftest import SECRET, data_uri

SALES_CSV = b"product,region,sales\nWidget,North,120.50\nGadget,South,310.25\nWidget,East,99.25\nGizmo,West,470.00\n"
TOTAL = "1000.00"

ROUND1_CHECKS = [
    {"js": "document.title === 'Sales Summary 7341'"},
    {"js": "!!document.querySelector(\"link[href*='bootstrap']\")"},
    "js: Math.abs(parseFloat(document.querySelector('#total-sales').textContent) - 1000) < 0.01",
    "The page explains where the numbers come from.",
]
ROUND2_CHECKS = [
    {"js": "document.querySelectorAll('#product-sales tbody tr').length === 3"},
    {"js": "document.querySelector('#product-sales').textContent.includes('Gizmo')"},
]


def request_body(round_number: int, evaluation_url: str | None, nonce: str | None = None) -> dict:
    """The grader's request for round 1 or round 2 of the sales task."""
    body = {
        "email": "student@example.com", "secret": SECRET, "task": "sales-summary-7341",
        "round": round_number, "nonce": nonce or f"nonce-7341-r{round_number}",
        "brief": ROUND1_BRIEF if round_number == 1 else ROUND2_BRIEF,
        "checks": ROUND1_CHECKS if round_number == 1 else ROUND2_CHECKS,
        "attachments": [{"name": "data.csv", "url": data_uri(SALES_CSV)}] if round_number == 1 else [],
    }
    if evaluation_url:
        body["evaluation_url"] = evaluation_url
    return body


ROUND1_BRIEF = (
    "Publish a single-page site that fetches data.csv from attachments, sums its sales column, "
    "sets the title to \"Sales Summary 7341\", displays the total inside #total-sales, "
    "and loads Bootstrap 5 from jsdelivr."
)
ROUND2_BRIEF = "Add a Bootstrap table #product-sales that lists each product with its total sales."

ROUND1_INDEX = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Sales Summary 7341</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css">
</head>
<body class="container py-4">
  <h1>Sales Summary</h1>
  <p>Total sales: <strong id="total-sales">…</strong></p>
  <p class="text-muted">Computed from the sales column of data.csv.</p>
  <script src="app.js"></script>
</body>
</html>
"""

ROUND1_SCRIPT = """async function loadSales() {
  const response = await fetch('./data.csv');
  const text = await response.text();
  const rows = text.trim().split('\\n').slice(1).map(line => line.split(','));
  window.salesRows = rows;
  const total = rows.reduce((sum, row) => sum + parseFloat(row[2]), 0);
  document.querySelector('#total-sales').textContent = total.toFixed(2);
  document.dispatchEvent(new Event('sales-loaded'));
}
loadSales();
"""

ROUND1_README = """# Sales Summary

Shows the total of the `sales` column of `data.csv`.

## Usage

Open the page; the total appears in the highlighted field.

## How it works

`app.js` fetches `data.csv`, sums the third column and writes the total into `#total-sales`.
"""

ROUND1_REPLY = f"""Here is the app.

index.html
```html
{ROUND1_INDEX}```

app.js
```javascript
{ROUND1_SCRIPT}```

README.md
````markdown
{ROUND1_README}````
"""

ROUND2_REPLY = """I added the per-product table.

index.html
```
<<<<<<< SEARCH
  <p class="text-muted">Computed from the sales column of data.csv.</p>
=======
  <p class="text-muted">Computed from the sales column of data.csv.</p>
  <table id="product-sales" class="table"><thead><tr><th>Product</th><th>Sales</th></tr></thead><tbody></tbody></table>
>>>>>>> REPLACE
```

app.js
```
<<<<<<< SEARCH
  document.dispatchEvent(new Event('sales-loaded'));
=======
  const byProduct = {};
  rows.forEach(row => { byProduct[row[0]] = (byProduct[row[0]] || 0) + parseFloat(row[2]); });
  const body = document.querySelector('#product-sales tbody');
  Object.entries(byProduct).forEach(([product, sales]) => {
    const tr = document.createElement('tr');
    tr.innerHTML = `<td>${product}</td><td>${sales.toFixed(2)}</td>`;
    body.appendChild(tr);
  });
  document.dispatchEvent(new Event('sales-loaded'));
>>>>>>> REPLACE
```

README.md
````markdown
# Sales Summary

Shows the total of the `sales` column of `data.csv` and, since round 2, a table of sales per product.

## How it works

`app.js` fetches `data.csv`, sums the third column into `#total-sales` and groups it by product into `#product-sales`.
````
"""
