"""Calibrated synthetic KKBOX data (``relisten generate``).

Writes into one directory the five CSV files of the KKBOX "music recommendation" competition in
their exact format, plus the true event probabilities:

====================  ========================================================================
file                  columns (header line, in this order)
====================  ========================================================================
train.csv             msno,song_id,source_system_tab,source_screen_name,source_type,target
test.csv              id,msno,song_id,source_system_tab,source_screen_name,source_type
members.csv           msno,city,bd,gender,registered_via,registration_init_time,expiration_date
songs.csv             song_id,song_length,genre_ids,artist_name,composer,lyricist,language
song_extra_info.csv   song_id,name,isrc
truth.csv             split,row,p_true
====================  ========================================================================

``truth.csv`` is never part of the KKBOX files: ``split`` is ``train`` or ``test``, ``row`` the
0-based data row within that file (for test rows this is the ``id``) and ``p_true`` the
probability, in (0, 1) with six decimals, with which the event's target was drawn. Its rows come
in event order, all train rows then all test rows, so data line ``i`` of truth.csv is the event
with global ``idx = i`` of bronze.events and the oracle AUC of any holdout is
``roc_auc_score(target, p_true)`` over its rows.

Format: UTF-8, LF line ends, no BOM; a field is quoted only when it holds a ``"`` (doubled
inside) or a TAB, as in the real files; no field holds a comma or a newline. Empty fields are
the missing marker, next to KKBOX's placeholders (``null`` tab, ``Unknown`` screen and
composer, ``-`` lyricist, ``-1`` language, bd 0, expiration 19700101).

Scale: ``users`` = rows of members.csv (each has at least one event), ``songs`` = distinct songs
of the event log, ``events`` = train rows + test rows; the test file holds the chronologically
last ``test_fraction`` of events. Row order is the clock. Within train, and within test,
(msno, song_id) pairs are unique; about 12.5% of the test rows repeat a train pair (KKBOX:
~320k). About 0.3% of the played songs are missing from songs.csv and 0.5% from
song_extra_info.csv; songs.csv also lists 2% never-played songs. A deterministic handful of
song ids equal member ids (KKBOX has 12 such collisions among 34,403 members). Same arguments,
same bytes.

Generative model (marginals from the calibration notes, structure from the thesis's data analysis):

* Latent taste: ``K`` clusters with unit centres in R^16. Users mix clusters (Dirichlet 0.3);
  artists belong to a cluster, songs mostly to their artist's; genres and languages are drawn
  from cluster-specific distributions whose average is the calibrated marginal. Who listens to
  which song follows the clusters, so co-occurrence carries the taste signal (collaborative
  models) and genre, language and artist carry part of it (content models).
* Activity: every song gets a listener count from a heavy-tailed sequence (about 62% of songs
  have one listener, capped at 30% of the users), ranked by artist and song popularity; each
  listen picks a user with weight ``activity_u * (0.8 theta_uk + 0.2 / K)`` (lognormal
  activity: median ~140 distinct songs per user at full scale), duplicate pairs are redrawn.
* Time: users join and leave (registration in 2017 -> joins late, expiration before 2017 ->
  leaves early); a user's events come in sessions spread over their active span; new releases
  are heard only after release (by users still active then). Sorting by time gives the row
  order.
* Context: a user-specific preference over ``source_system_tab``; within a tab the
  (screen, type) combination follows KKBOX's joint table; most events keep their session's
  context.
* Target: ``Bernoulli(p_true)``, ``logit p_true = user propensity + user activity + song +
  popularity + artist + genre (726 highest) + song-length inverted U (3-5 min best) + age (dip at
  35-45) + user.song factor dot + user.artist factor dot + user.genre affinity + screen/type
  offsets + a slow downward trend + a per-tab offset``; the per-tab offsets are solved so the
  train-row repeat rate per tab follows KKBOX's ordering (my library ~0.69 ... radio ~0.17) and
  the overall train rate is 0.5035. (CALIBRATION's 85% vs 24% come from the head of train.csv,
  whose overall rate is 76%; with KKBOX's tab shares and 50.35% overall they cannot both hold.)

Modules, in the order :func:`~relisten_spark.data.synthetic.generator.generate` uses them:
``calibration`` (the measured marginals), ``sampling`` (random draws), ``members``, ``latent``
(taste clusters), ``catalogue`` (numeric song attributes), ``events`` (who hears what, when),
``context`` (tab, screen, type), ``target`` (``p_true``), ``names`` and ``song_metadata`` (the
text columns), ``writers`` (the CSV files), ``statistics`` (the figures of the summary) and
``generator`` (``generate`` and the stage entry ``run``).
"""
