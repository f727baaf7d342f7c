"""The record of every change to the catalogue: change sets, and what each product was before
and after. It sits below the catalogue: the catalogue, imports, delete-all and undo all write
and read it, and it knows products only as rows of the `products` table."""
