-- Contestant (c) of the evaluate bench: the 30 steps of benches/fixtures/thirty_steps.step as
-- hand-written SQL over the `patients` table (see benches/support/sqlite.rs): one SELECT per
-- step, UNION ALL, then the placement every step shares and the daily cap. Parameters: :now,
-- :from, :until, the clinic's wall-clock time as 'YYYY-MM-DD HH:MM:SS'. Step numbers are
-- positions in the rules file. `unless` conditions only test whether dates are set, so they
-- are part of each step's WHERE. Counts the sends in [:from, :until) per step.
WITH p AS NOT MATERIALIZED (
    SELECT pk, stage, stage_entered_at, appointment_at, last_visit_at, next_booking_at,
           cancelled_at, department, ';' || tags || ';' AS tags,
           CAST(strftime('%Y', :now) AS INTEGER) - CAST(strftime('%Y', birth_date) AS INTEGER)
             - (strftime('%m-%d', :now) < strftime('%m-%d', birth_date)) AS age
      FROM patients
     WHERE NOT opted_out AND line_user_id IS NOT NULL
),
-- For `every`: the first period that can still matter (k >= 1); seq adds 0, 1, 2.
entered AS NOT MATERIALIZED (
    SELECT *, julianday(:now) - julianday(stage_entered_at) - 4 AS days_in
      FROM p WHERE stage_entered_at IS NOT NULL
),
occurrence(pk, step, nominal, at_time, sendable, before) AS (
    -- booking_confirm: when stage=booked after 0m
    SELECT pk, 0, stage_entered_at, NULL, '+1 day', NULL FROM entered
     WHERE stage = 'booked'
    UNION ALL
    -- early_what_to_bring: when stage=booked and age >= 65 7d before appointment_at at 11:00
    --   unless cancelled_at
    SELECT pk, 1, datetime(appointment_at, '-7 days'), '11:00:00', '+1 day', appointment_at
      FROM p WHERE stage = 'booked' AND age >= 65
       AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- what_to_bring: when stage=booked 3d before appointment_at at 12:00 unless cancelled_at
    SELECT pk, 2, datetime(appointment_at, '-3 days'), '12:00:00', '+1 day', appointment_at
      FROM p WHERE stage = 'booked' AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- checkup_fasting: when stage=booked and department = "健診"
    --   2d before appointment_at at 15:00 unless cancelled_at
    SELECT pk, 3, datetime(appointment_at, '-2 days'), '15:00:00', '+1 day', appointment_at
      FROM p WHERE stage = 'booked' AND department = '健診'
       AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- visit_reminder: when stage=booked 1d before appointment_at at 18:00 unless cancelled_at
    SELECT pk, 4, datetime(appointment_at, '-1 day'), '18:00:00', '+1 day', appointment_at
      FROM p WHERE stage = 'booked' AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- same_day_reminder: when stage=booked and not tag=vip 3h before appointment_at
    --   unless cancelled_at within 2h
    SELECT pk, 5, datetime(appointment_at, '-3 hours'), NULL, '+2 hours', appointment_at
      FROM p WHERE stage = 'booked' AND instr(tags, ';vip;') = 0
       AND appointment_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- thanks: when stage=first_visit after 1d at 10:00
    SELECT pk, 6, datetime(stage_entered_at, '+1 day'), '10:00:00', '+1 day', NULL
      FROM entered WHERE stage = 'first_visit'
    UNION ALL
    -- care_notes: when stage=first_visit after 2d at 12:00
    SELECT pk, 7, datetime(stage_entered_at, '+2 days'), '12:00:00', '+1 day', NULL
      FROM entered WHERE stage = 'first_visit'
    UNION ALL
    -- survey: when stage=first_visit after 4d at 12:00 within 3d
    SELECT pk, 8, datetime(stage_entered_at, '+4 days'), '12:00:00', '+3 days', NULL
      FROM entered WHERE stage = 'first_visit'
    UNION ALL
    -- first_visit_tips: when stage=first_visit and tag=chronic after 5d at 15:00
    SELECT pk, 9, datetime(stage_entered_at, '+5 days'), '15:00:00', '+1 day', NULL
      FROM entered WHERE stage = 'first_visit' AND instr(tags, ';chronic;') > 0
    UNION ALL
    -- next_booking: when stage=first_visit after 7d at 10:00 unless next_booking_at
    SELECT pk, 10, datetime(stage_entered_at, '+7 days'), '10:00:00', '+1 day', NULL
      FROM entered WHERE stage = 'first_visit' AND next_booking_at IS NULL
    UNION ALL
    -- next_booking_again: when stage=first_visit after 2w at 10:30
    --   unless next_booking_at or cancelled_at within 2d
    SELECT pk, 11, datetime(stage_entered_at, '+14 days'), '10:30:00', '+2 days', NULL
      FROM entered WHERE stage = 'first_visit'
       AND next_booking_at IS NULL AND cancelled_at IS NULL
    UNION ALL
    -- lifestyle_tips: when stage=follow_up 2w after last_visit_at at 12:00
    SELECT pk, 12, datetime(last_visit_at, '+14 days'), '12:00:00', '+1 day', NULL
      FROM p WHERE stage = 'follow_up' AND last_visit_at IS NOT NULL
    UNION ALL
    -- lifestyle_tips_6w: when stage=follow_up and age >= 50 6w after last_visit_at at 12:30
    SELECT pk, 13, datetime(last_visit_at, '+42 days'), '12:30:00', '+1 day', NULL
      FROM p WHERE stage = 'follow_up' AND age >= 50 AND last_visit_at IS NOT NULL
    UNION ALL
    -- vip_checkup: when stage=follow_up and tag=vip 2mo after last_visit_at at 11:00
    --   unless next_booking_at
    SELECT pk, 14, datetime(last_visit_at, '+2 months', 'floor'), '11:00:00', '+1 day', NULL
      FROM p WHERE stage = 'follow_up' AND instr(tags, ';vip;') > 0
       AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    -- checkup: when stage=follow_up 3mo after last_visit_at at 10:00 unless next_booking_at
    SELECT pk, 15, datetime(last_visit_at, '+3 months', 'floor'), '10:00:00', '+1 day', NULL
      FROM p WHERE stage = 'follow_up' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    -- checkup_nudge: when stage=follow_up 6mo after last_visit_at at 10:00
    --   unless next_booking_at
    SELECT pk, 16, datetime(last_visit_at, '+6 months', 'floor'), '10:00:00', '+1 day', NULL
      FROM p WHERE stage = 'follow_up' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    -- follow_up_news: when stage=follow_up every 2w at 13:00 within 1d
    SELECT pk, 17, datetime(stage_entered_at, '+' || (14 * (k0 + i)) || ' days'), '13:00:00',
           '+1 day', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 14 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'follow_up') JOIN seq
    UNION ALL
    -- follow_up_flu: when stage=follow_up and tag=flu_season and not tag=flu_vaccinated
    --   and (age >= 65 or tag=chronic) every 4w at 14:00 within 3d
    SELECT pk, 18, datetime(stage_entered_at, '+' || (28 * (k0 + i)) || ' days'), '14:00:00',
           '+3 days', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 28 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'follow_up' AND instr(tags, ';flu_season;') > 0
               AND instr(tags, ';flu_vaccinated;') = 0
               AND (age >= 65 OR instr(tags, ';chronic;') > 0)) JOIN seq
    UNION ALL
    -- next_visit_reminder: when stage in (first_visit, follow_up, regular)
    --   1d before next_booking_at at 18:00 unless cancelled_at
    SELECT pk, 19, datetime(next_booking_at, '-1 day'), '18:00:00', '+1 day', next_booking_at
      FROM p WHERE stage IN ('first_visit', 'follow_up', 'regular')
       AND next_booking_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- next_visit_early: when stage in (follow_up, regular) and tag=chronic
    --   7d before next_booking_at at 12:00 unless cancelled_at
    SELECT pk, 20, datetime(next_booking_at, '-7 days'), '12:00:00', '+1 day', next_booking_at
      FROM p WHERE stage IN ('follow_up', 'regular') AND instr(tags, ';chronic;') > 0
       AND next_booking_at IS NOT NULL AND cancelled_at IS NULL
    UNION ALL
    -- health_news: when stage=regular every 30d at 12:00 within 2d
    SELECT pk, 21, datetime(stage_entered_at, '+' || (30 * (k0 + i)) || ' days'), '12:00:00',
           '+2 days', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 30 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'regular') JOIN seq
    UNION ALL
    -- flu_vaccine: when stage=regular and tag=flu_season and not tag=flu_vaccinated
    --   and (age >= 65 or tag=chronic) every 4w at 10:00 within 3d
    SELECT pk, 22, datetime(stage_entered_at, '+' || (28 * (k0 + i)) || ' days'), '10:00:00',
           '+3 days', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 28 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'regular' AND instr(tags, ';flu_season;') > 0
               AND instr(tags, ';flu_vaccinated;') = 0
               AND (age >= 65 OR instr(tags, ';chronic;') > 0)) JOIN seq
    UNION ALL
    -- annual_checkup: when stage=regular and age >= 40 and age <= 74 every 1y at 11:00
    SELECT pk, 23, datetime(stage_entered_at, '+' || (12 * (k0 + i)) || ' months', 'floor'),
           '11:00:00', '+1 day', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 366 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'regular' AND age BETWEEN 40 AND 74) JOIN seq
    UNION ALL
    -- regular_lifestyle: when stage=regular and age >= 40 and age <= 74 and not tag=vip
    --   every 2mo at 13:30 within 2d
    SELECT pk, 24, datetime(stage_entered_at, '+' || (2 * (k0 + i)) || ' months', 'floor'),
           '13:30:00', '+2 days', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 62 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'regular' AND age BETWEEN 40 AND 74
               AND instr(tags, ';vip;') = 0) JOIN seq
    UNION ALL
    -- regular_checkup: when stage=regular and tag=chronic 3mo after last_visit_at at 10:30
    --   unless next_booking_at
    SELECT pk, 25, datetime(last_visit_at, '+3 months', 'floor'), '10:30:00', '+1 day', NULL
      FROM p WHERE stage = 'regular' AND instr(tags, ';chronic;') > 0
       AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    -- stay_in_touch: when stage=regular 6mo after last_visit_at at 15:00 unless next_booking_at
    SELECT pk, 26, datetime(last_visit_at, '+6 months', 'floor'), '15:00:00', '+1 day', NULL
      FROM p WHERE stage = 'regular' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    -- annual_reminder: when stage=regular and age >= 40 and age <= 74
    --   11mo after last_visit_at at 11:30 unless next_booking_at or cancelled_at
    SELECT pk, 27, datetime(last_visit_at, '+11 months', 'floor'), '11:30:00', '+1 day', NULL
      FROM p WHERE stage = 'regular' AND age BETWEEN 40 AND 74 AND last_visit_at IS NOT NULL
       AND next_booking_at IS NULL AND cancelled_at IS NULL
    UNION ALL
    -- regular_stay_12mo: when stage=regular 12mo after last_visit_at at 15:30
    --   unless next_booking_at
    SELECT pk, 28, datetime(last_visit_at, '+12 months', 'floor'), '15:30:00', '+1 day', NULL
      FROM p WHERE stage = 'regular' AND last_visit_at IS NOT NULL AND next_booking_at IS NULL
    UNION ALL
    -- regular_booking: when stage=regular and age >= 75 and not next_booking_at
    --   every 60d at 10:30 within 3d
    SELECT pk, 29, datetime(stage_entered_at, '+' || (60 * (k0 + i)) || ' days'), '10:30:00',
           '+3 days', NULL
      FROM (SELECT pk, stage_entered_at, max(1, CAST(days_in / 60 AS INTEGER)) AS k0
              FROM entered WHERE stage = 'regular' AND age >= 75 AND next_booking_at IS NULL)
      JOIN seq
),
-- `at HH:MM` on the occurrence's day.
at_day AS (
    SELECT pk, step, sendable, before,
           CASE WHEN at_time IS NULL THEN nominal ELSE date(nominal) || ' ' || at_time END AS t
      FROM occurrence
),
-- A `before` send timed on an earlier day than its anchor's must go out before that day.
timed AS (
    SELECT pk, step, sendable, t,
           CASE WHEN before IS NOT NULL AND date(t) < date(before)
                THEN date(before) || ' 00:00:00' ELSE before END AS before
      FROM at_day
),
-- Quiet hours 21:00-09:00: held until 09:00.
due AS (
    SELECT pk, step, sendable, before,
           CASE WHEN time(t) >= '21:00:00' THEN date(t, '+1 day') || ' 09:00:00'
                WHEN time(t) < '09:00:00' THEN date(t) || ' 09:00:00'
                ELSE t END AS due
      FROM timed
),
-- Late sends go out now (out of quiet hours); `before` sends never at or after the anchor
-- (or its day, above).
placed AS (
    SELECT pk, step,
           CASE WHEN due >= :now THEN due
                WHEN time(:now) >= '21:00:00' THEN date(:now, '+1 day') || ' 09:00:00'
                WHEN time(:now) < '09:00:00' THEN date(:now) || ' 09:00:00'
                ELSE :now END AS at,
           min(datetime(due, sendable), ifnull(before, '9999')) AS expires
      FROM due
     WHERE before IS NULL OR due < before
),
-- cap 2 per day, in time and file order.
ranked AS (
    SELECT pk, step, at, expires,
           row_number() OVER (PARTITION BY pk, substr(at, 1, 10) ORDER BY at, step) AS n
      FROM placed
     WHERE at < expires AND at < :until
),
-- Over the cap: to the next day's 09:00 while not expired, to be ranked again with that
-- day's sends (one round: a send bumped again is dropped, not carried on).
carried AS (
    SELECT pk, step, at FROM ranked WHERE n <= 2
    UNION ALL
    SELECT pk, step, date(at, '+1 day') || ' 09:00:00' FROM ranked
     WHERE n > 2 AND date(at, '+1 day') || ' 09:00:00' < expires
),
reranked AS (
    SELECT pk, step, at,
           row_number() OVER (PARTITION BY pk, substr(at, 1, 10) ORDER BY at, step) AS n
      FROM carried
     WHERE at < :until
)
SELECT step, count(*) FROM reranked WHERE n <= 2 AND at >= :from GROUP BY step
