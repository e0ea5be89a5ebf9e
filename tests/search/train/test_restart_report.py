"""The restart rule and its table, shared by the segqc-hw report and bench/size_table.py."""

from search.train.restart_report import attempts_text, restart_table, rule_text, was_restarted

_ONCE = {"attempts": [{"attempt": 0, "seed": 1, "train_dice": 0.151, "collapsed": True},
                      {"attempt": 1, "seed": 7920, "train_dice": 0.722, "collapsed": False}],
         "kept": 1, "collapsed": False}
_FINE = {"attempts": [{"attempt": 0, "seed": 1, "train_dice": 0.7, "collapsed": False}], "kept": 0, "collapsed": False}
_STUCK = {"attempts": [{"attempt": 0, "seed": 2, "train_dice": None, "collapsed": True}], "kept": 0, "collapsed": True}


def test_rule_names_floor_and_restarts():
    text = rule_text(0.3, 2)
    assert "below 0.3" in text and "up to 2 times" in text and "no held-out patient" in text


def test_was_restarted():
    assert was_restarted(_ONCE) and was_restarted(_STUCK)
    assert not was_restarted(_FINE) and not was_restarted(None) and not was_restarted({})


def test_attempts_text_lists_every_attempt_with_its_seed():
    assert attempts_text(_ONCE) == "attempt 0 (seed 1) 0.151, attempt 1 (seed 7920) 0.722"
    assert attempts_text(_STUCK) == "attempt 0 (seed 2) n/a"


def test_table_keeps_only_trainings_that_collapsed():
    lines = restart_table([(["a", "96"], _ONCE), (["b", "96"], _FINE), (["c", "64"], _STUCK)], ["net", "size"], 0.3, 2)
    assert lines[0] == rule_text(0.3, 2)
    assert lines[2] == "| net | size | attempts: training-frame Dice | kept | still collapsed |"
    assert lines[3] == "|---|---|---|---|---|"
    assert lines[4:] == ["| a | 96 | attempt 0 (seed 1) 0.151, attempt 1 (seed 7920) 0.722 | 1 | no |",
                         "| c | 64 | attempt 0 (seed 2) n/a | 0 | yes |"]


def test_table_without_collapse_says_so():
    assert restart_table([(["b"], _FINE)], ["net"], 0.3, 2) == [rule_text(0.3, 2) + " No training collapsed."]
    assert restart_table([], ["net"], 0.3, 0)[0].endswith("No training collapsed (restarts off).")
