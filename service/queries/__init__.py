"""Reading sweeps and runs back: the use cases of the API's GET requests. Each takes a session
and reads rows through the row reader (service/db/rows.py); none writes."""
