"""Reading engagement logs.

File expansion and checks (:mod:`.read`), the CSV/TSV (:mod:`.text`) and JSON-lines (:mod:`.jsonl`)
readers, and the batch type they all produce (:mod:`.base`).
"""
