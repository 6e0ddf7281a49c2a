-- Contestant (d) of the evaluate bench: the 30 steps of benches/fixtures/thirty_steps.step as
-- DuckDB SQL straight over the export (`read_csv`), the same query as (c)'s
-- benches/support/thirty_steps.sql in DuckDB's date arithmetic: one SELECT per step, UNION ALL,
-- then `at` times, quiet hours 21:00-09:00, expiry, late sends and `cap 2 per day` with one
-- round of carrying the overflow to the next morning. Timestamps are the clinic's wall clock
-- (Asia/Tokyo keeps one offset, so wall-clock arithmetic is exact); `+ INTERVAL n MONTH` clamps
-- Nov 30 + 3 months to Feb 28 as chrono does. Parameters: $csv (the file), $now, $from, $until
-- (TIMESTAMP, wall clock). Counts the sends in [$from, $until) per step (positions in the file).
WITH raw AS (
    SELECT * FROM read_csv($csv, header = true, auto_detect = true, types = {
        'id': 'VARCHAR', 'line_user_id': 'VARCHAR', 'stage': 'VARCHAR',
        'stage_entered_at': 'TIMESTAMP', 'birth_date': 'DATE', 'tags': 'VARCHAR',
        'opted_out': 'BOOLEAN', 'appointment_at': 'TIMESTAMP', 'visited_at': 'TIMESTAMP',
        'last_visit_at': 'TIMESTAMP', 'next_booking_at': 'TIMESTAMP',
        'cancelled_at': 'TIMESTAMP', 'department': 'VARCHAR'})
),
p AS (
    SELECT id AS pk, stage, stage_entered_at, appointment_at, last_visit_at,
           next_booking_at, cancelled_at, department,
           ';' || coalesce(tags, '') || ';' AS tags,
           year($now::TIMESTAMP) - year(birth_date)
             - CASE WHEN strftime($now::TIMESTAMP, '%m-%d') < strftime(birth_date, '%m-%d')
                    THEN 1 ELSE 0 END AS age
      FROM raw
     WHERE NOT coalesce(opted_out, false) AND line_user_id IS NOT NULL
),
-- For `every`: the first period that can still matter (k >= 1); seq adds 0, 1, 2.
entered AS (
    SELECT *, date_diff('second', stage_entered_at, $now::TIMESTAMP) / 86400.0 - 4 AS days_in
      FROM p WHERE stage_entered_at IS NOT NULL
),
seq AS (SELECT range AS i FROM range(3)),
occurrence AS (
    SELECT pk, 0 AS step, stage_entered_at AS nominal, NULL::TIME AS at_time,
           INTERVAL 1 DAY AS sendable, NULL::TIMESTAMP AS anchor
      FROM entered WHERE stage = 'booked'
    UNION ALL
    SELECT pk, 1, appointment_at - INTERVAL 7 DAY, TIME '11:00', INTERVAL 1 DAY, appointment_at
      FROM p WHERE stage = 'booked' AND age >= 65
       AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 2, appointment_at - INTERVAL 3 DAY, TIME '12:00', INTERVAL 1 DAY, appointment_at
      FROM p WHERE stage = 'booked' AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 3, appointment_at - INTERVAL 2 DAY, TIME '15:00', INTERVAL 1 DAY, appointment_at
      FROM p WHERE stage = 'booked' AND department = '健診'
       AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 4, appointment_at - INTERVAL 1 DAY, TIME '18:00', INTERVAL 1 DAY, appointment_at
      FROM p WHERE stage = 'booked' AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 5, appointment_at - INTERVAL 3 HOUR, NULL, INTERVAL 2 HOUR, appointment_at
      FROM p WHERE stage = 'booked' AND instr(tags, ';vip;') = 0
       AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 6, stage_entered_at + INTERVAL 1 DAY, TIME '10:00', INTERVAL 1 DAY, NULL
      FROM entered WHERE stage = 'first_visit'
    UNION ALL
    SELECT pk, 7, stage_entered_at + INTERVAL 2 DAY, TIME '12:00', INTERVAL 1 DAY, NULL
      FROM entered WHERE stage = 'first_visit'
    UNION ALL
    SELECT pk, 8, stage_entered_at + INTERVAL 4 DAY, TIME '12:00', INTERVAL 3 DAY, NULL
      FROM entered WHERE stage = 'first_visit'
    UNION ALL
    SELECT pk, 9, stage_entered_at + INTERVAL 5 DAY, TIME '15:00', INTERVAL 1 DAY, NULL
      FROM entered WHERE stage = 'first_visit' AND instr(tags, ';chronic;') > 0
    UNION ALL
    SELECT pk, 10, stage_entered_at + INTERVAL 7 DAY, TIME '10:00', INTERVAL 1 DAY, NULL
      FROM entered WHERE stage = 'first_visit' AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 11, stage_entered_at + INTERVAL 14 DAY, TIME '10:30', INTERVAL 2 DAY, NULL
      FROM entered WHERE stage = 'first_visit'
       AND next_booking_at IS NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 12, last_visit_at + INTERVAL 14 DAY, TIME '12:00', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'follow_up' AND last_visit_at IS NOT NULL
    UNION ALL
    SELECT pk, 13, last_visit_at + INTERVAL 42 DAY, TIME '12:30', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'follow_up' AND age >= 50 AND last_visit_at IS NOT NULL
    UNION ALL
    SELECT pk, 14, last_visit_at + INTERVAL 2 MONTH, TIME '11:00', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'follow_up' AND instr(tags, ';vip;') > 0
       AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 15, last_visit_at + INTERVAL 3 MONTH, TIME '10:00', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'follow_up' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 16, last_visit_at + INTERVAL 6 MONTH, TIME '10:00', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'follow_up' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 17, stage_entered_at + to_days(CAST(14 * (k0 + i) AS INTEGER)), TIME '13:00',
           INTERVAL 1 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 14) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'follow_up') CROSS JOIN seq
    UNION ALL
    SELECT pk, 18, stage_entered_at + to_days(CAST(28 * (k0 + i) AS INTEGER)), TIME '14:00',
           INTERVAL 3 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 28) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'follow_up' AND instr(tags, ';flu_season;') > 0
               AND instr(tags, ';flu_vaccinated;') = 0
               AND (age >= 65 OR instr(tags, ';chronic;') > 0)) CROSS JOIN seq
    UNION ALL
    SELECT pk, 19, next_booking_at - INTERVAL 1 DAY, TIME '18:00', INTERVAL 1 DAY, next_booking_at
      FROM p WHERE stage IN ('first_visit', 'follow_up', 'regular')
       AND next_booking_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 20, next_booking_at - INTERVAL 7 DAY, TIME '12:00', INTERVAL 1 DAY, next_booking_at
      FROM p WHERE stage IN ('follow_up', 'regular') AND instr(tags, ';chronic;') > 0
       AND next_booking_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 21, stage_entered_at + to_days(CAST(30 * (k0 + i) AS INTEGER)), TIME '12:00',
           INTERVAL 2 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 30) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'regular') CROSS JOIN seq
    UNION ALL
    SELECT pk, 22, stage_entered_at + to_days(CAST(28 * (k0 + i) AS INTEGER)), TIME '10:00',
           INTERVAL 3 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 28) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'regular' AND instr(tags, ';flu_season;') > 0
               AND instr(tags, ';flu_vaccinated;') = 0
               AND (age >= 65 OR instr(tags, ';chronic;') > 0)) CROSS JOIN seq
    UNION ALL
    SELECT pk, 23, stage_entered_at + to_months(CAST(12 * (k0 + i) AS INTEGER)), TIME '11:00',
           INTERVAL 1 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 366) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'regular' AND age BETWEEN 40 AND 74) CROSS JOIN seq
    UNION ALL
    SELECT pk, 24, stage_entered_at + to_months(CAST(2 * (k0 + i) AS INTEGER)), TIME '13:30',
           INTERVAL 2 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 62) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'regular' AND age BETWEEN 40 AND 74
               AND instr(tags, ';vip;') = 0) CROSS JOIN seq
    UNION ALL
    SELECT pk, 25, last_visit_at + INTERVAL 3 MONTH, TIME '10:30', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'regular' AND instr(tags, ';chronic;') > 0
       AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 26, last_visit_at + INTERVAL 6 MONTH, TIME '15:00', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'regular' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 27, last_visit_at + INTERVAL 11 MONTH, TIME '11:30', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'regular' AND age BETWEEN 40 AND 74 AND last_visit_at IS NOT NULL
       AND next_booking_at IS NULL AND cancelled_at IS NULL
    UNION ALL
    SELECT pk, 28, last_visit_at + INTERVAL 12 MONTH, TIME '15:30', INTERVAL 1 DAY, NULL
      FROM p WHERE stage = 'regular' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    SELECT pk, 29, stage_entered_at + to_days(CAST(60 * (k0 + i) AS INTEGER)), TIME '10:30',
           INTERVAL 3 DAY, NULL
      FROM (SELECT pk, stage_entered_at, greatest(1, CAST(trunc(days_in / 60) AS BIGINT)) AS k0
              FROM entered WHERE stage = 'regular' AND age >= 75 AND next_booking_at IS NULL)
      CROSS JOIN seq
),
-- `at HH:MM` on the occurrence's day.
at_day AS (
    SELECT pk, step, sendable, anchor,
           CASE WHEN at_time IS NULL THEN nominal ELSE CAST(nominal AS DATE) + at_time END AS t
      FROM occurrence
),
-- A `before` send timed on an earlier day than its anchor's must go out before that day.
timed AS (
    SELECT pk, step, sendable, t,
           CASE WHEN anchor IS NOT NULL AND CAST(t AS DATE) < CAST(anchor AS DATE)
                THEN CAST(CAST(anchor AS DATE) AS TIMESTAMP) ELSE anchor END AS anchor
      FROM at_day
),
-- Quiet hours 21:00-09:00: held until 09:00.
due AS (
    SELECT pk, step, sendable, anchor,
           CASE WHEN CAST(t AS TIME) >= TIME '21:00' THEN (CAST(t AS DATE) + 1) + TIME '09:00'
                WHEN CAST(t AS TIME) < TIME '09:00' THEN CAST(t AS DATE) + TIME '09:00'
                ELSE t END AS due
      FROM timed
),
-- Late sends go out now (out of quiet hours); `before` sends never at or after the anchor.
placed AS (
    SELECT pk, step,
           CASE WHEN due >= $now::TIMESTAMP THEN due
                WHEN CAST($now::TIMESTAMP AS TIME) >= TIME '21:00'
                     THEN (CAST($now::TIMESTAMP AS DATE) + 1) + TIME '09:00'
                WHEN CAST($now::TIMESTAMP AS TIME) < TIME '09:00'
                     THEN CAST($now::TIMESTAMP AS DATE) + TIME '09:00'
                ELSE $now::TIMESTAMP END AS send_at,
           least(due + sendable, coalesce(anchor, TIMESTAMP '9999-12-31 00:00:00')) AS expires
      FROM due
     WHERE anchor IS NULL OR due < anchor
),
-- cap 2 per day, in time and file order.
ranked AS (
    SELECT pk, step, send_at, expires,
           row_number() OVER (PARTITION BY pk, CAST(send_at AS DATE) ORDER BY send_at, step) AS n
      FROM placed
     WHERE send_at < expires AND send_at < $until::TIMESTAMP
),
-- Over the cap: to the next day's 09:00 while not expired, ranked again with that day's sends
-- (one round: a send bumped again is dropped, not carried on).
carried AS (
    SELECT pk, step, send_at FROM ranked WHERE n <= 2
    UNION ALL
    SELECT pk, step, (CAST(send_at AS DATE) + 1) + TIME '09:00' FROM ranked
     WHERE n > 2 AND (CAST(send_at AS DATE) + 1) + TIME '09:00' < expires
),
reranked AS (
    SELECT pk, step, send_at,
           row_number() OVER (PARTITION BY pk, CAST(send_at AS DATE) ORDER BY send_at, step) AS n
      FROM carried
     WHERE send_at < $until::TIMESTAMP
)
SELECT step, count(*) AS sends FROM reranked
 WHERE n <= 2 AND send_at >= $from::TIMESTAMP GROUP BY step ORDER BY step
