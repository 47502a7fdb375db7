"""Stage `validate`: check the whole of params.yaml before any other stage runs.

Every other stage depends on this stage's output, so DVC runs it first whenever params.yaml
changes; if params.yaml is invalid it stops the pipeline here, before DVC has removed any
other stage's previous results. The output's content never changes, so a valid edit
reruns only the stages that read the edited values. It also makes the default DVC remote's folder private
(:func:`pcn.remote.private_remote_parent`) before any ``dvc push`` writes there.
"""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

from pcn.files import write_text
from pcn.remote import private_remote_parent

from stage_inputs import load_params
from workspace import WORKSPACE

MARKER = "params.yaml passed validation (see stages/validate.py)\n"


def main() -> None:
    params = load_params()
    private_remote_parent()
    write_text(WORKSPACE.validated, MARKER)
    print(
        f"validate: params.yaml is valid ({len(params.variants)} variants x {len(params.seeds)} seeds, "
        f"data {params.data.name})"
    )


if __name__ == "__main__":
    main()
