"""The guided demo "Loafing in one minute": train CT and ST briefly, load them, compare the smallest sub-net."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from .session import SLOTS

__all__ = ["DEMO_EPOCHS", "Demo"]

DEMO_EPOCHS = 8
INTRO = ("<b>Loafing in one minute.</b> Training a resnet20 with common training (CT) and with stimulative "
         "training (ST) side by side on handwritten digits for {epochs} epochs…")


class Demo(QObject):
    """Drives the window through the demo; ``active`` while it waits for training or accuracy."""

    def __init__(self, win: Any) -> None:
        super().__init__(win)
        self.win = win
        self.active = False
        self.plan: Any = None
        self.out_root: str | None = None  # where the demo's runs go (None: the Train tab's default)
        self.epochs = DEMO_EPOCHS

    def start(self) -> bool:
        win = self.win
        panel = win.training_or_warn()
        if panel is None:
            return False
        if panel.is_training():
            win.show_status("A training is already running; stop it first (Train tab).", error=True)
            return False
        win.set_presentation(True)
        win.tabs.setCurrentWidget(win.train_tab)
        self.active, self.plan = True, None
        extra = {"out_root": str(self.out_root)} if self.out_root else {}
        if not panel.start(methods=("ct", "st"), model="resnet20", dataset="digits", epochs=self.epochs, **extra):
            self.active = False
            return False
        win.explore.set_caption(INTRO.format(epochs=self.epochs))
        win.show_status("Guided demo: training CT and ST…", timeout=0)
        return True

    def on_runs_finished(self, runs: dict[str, str]) -> bool:
        """Load the demo's runs and show the smallest sub-net; False when no demo was running."""
        if not self.active:
            return False
        win = self.win
        missing = [s for s in SLOTS if s not in runs]
        if missing:
            self.active = False
            win.explore.set_caption("The demo training did not finish (" + ", ".join(m.upper() for m in missing)
                                    + " missing).")
            return True
        for slot in SLOTS:
            win.files.open_checkpoint(runs[slot], slot)
        win.tabs.setCurrentWidget(win.explore_tab)
        win.set_bn_mode("main")
        win.apply_preset("smallest")
        self.plan = win.session.plan
        self.update_caption()
        return True

    def on_training_error(self, message: str) -> None:
        panel = self.win.training
        if self.active and panel is not None and not panel.is_training():
            self.active = False
            self.win.explore.set_caption(f"The demo could not run: {message}")

    def update_caption(self) -> None:
        win = self.win
        if not self.active or self.plan is None or win.session.plan != self.plan:
            return
        ct, st = win.cards["ct"], win.cards["st"]
        if ct.accuracy is None or st.accuracy is None or not (ct.final and st.final):
            win.explore.set_caption("<b>Loafing in one minute.</b> Both networks are trained. Now only the first "
                                    "block of each stage runs (the smallest sub-network); measuring it inside each "
                                    "network…")
            return
        ct_main = f"{ct.main_accuracy:.1f} %" if ct.main_accuracy is not None else "?"
        st_main = f"{st.main_accuracy:.1f} %" if st.main_accuracy is not None else "?"
        better = st.accuracy - ct.accuracy
        verdict = (f"ST's sub-network is <b>{better:.1f} points better</b>: ST trained every sub-network to pull "
                   "its weight, while inside the CT network the sub-network <b>loafs</b>, relying on the blocks "
                   "that are now switched off." if better > 0 else
                   "This time CT's sub-network held up as well; loafing varies from run to run, and grows with "
                   "depth and training time. Try Random ordered sub-net a few times.")
        win.explore.set_caption(
            f"<b>Loafing in one minute.</b> The full networks score CT {ct_main} and ST {st_main}. Keeping only "
            f"the first block of each stage ({win.session.plan}), the same sub-network scores "
            f"<b>CT {ct.accuracy:.1f} %</b> versus <b>ST {st.accuracy:.1f} %</b>. {verdict} "
            "<i>Click blocks to explore; click this note to hide it.</i>")
        self.active = False

    def hide_caption_if_stale(self) -> None:
        """Other models were loaded: the demo's explanation no longer describes them."""
        if not self.active:
            self.win.explore.caption.hide()
