"""Training data for every stage that trains: ``--data SPEC``, datasets on disk, method protocols.

Torch-free and below ``search.train`` in the layers (it reads cases through ``app.data``). The spec
parser (``app.data.data_spec``) and the dataset index with the official splits
(``app.data.dataset_index``) are the app's, shared with ``python -m app validate KIND:DIR``; the
label renumbering and the methods' protocols are here. Specs::

    phantom          the phantom generator (default; exactly the behaviour before --data existed)
    camus:DIR        CAMUS, 2019 MetaImage (training/, testing/) or 2023 NIfTI (database_nifti/,
                     database_split/) release, apical 4-chamber view; labels 1 LV, 2 MYO, 3 LA
    acdc:DIR         ACDC (training/, testing/ or a folder of patientNNN/); labels 1 RV, 2 MYO, 3 LV
    echonet:DIR      EchoNet-Dynamic (FileList.csv with its Split column, VolumeTracings.csv, Videos/);
                     label 1 LV, rasterised from the tracings
    dicom:DIR        multi-frame DICOM (US: echo, MR: one cine slice) with <stem>_mask.npz,
                     <stem>_gt.nii.gz or a DICOM SEG beside each file; patients from PatientID
    nifti:DIR        <stem>.nii.gz + <stem>_gt.nii.gz pairs; 2D+t = echo with CAMUS labels, 4D = cine
                     with ACDC labels, unless DIR/labels.json maps values to names ({"1": "MYO"})

Usage (what ``python -m search finetune`` and the method CLIs do)::

    from search.data import ECHO_MYOCARDIUM, open_dataset, parse_data_spec, protocol_cases, segqc_parts

    spec = parse_data_spec("camus:/data/CAMUS")        # DataSpecError: unknown kind / missing folder
    index = open_dataset(spec)                         # labelled cases, official split, no images read
    parts = protocol_cases(index, ECHO_MYOCARDIUM, "segqc-hw",
                           lambda m: segqc_parts(m, n_s1=40, n_s2=40, n_test=20, n_qc_val=10, seed=0))
    card_data = spec.card_info({k: [c.case_id for c in v] for k, v in parts.items()},
                               split="segqc-hw S1/S2/test, by patient, seed 0")

Guarantees: splits are by patient and deterministic for a seed; a dataset's official test set (CAMUS
``subgroup_testing.txt`` / 2019 ``testing/``, ACDC ``testing/``, EchoNet ``Split == TEST``) is the
test part; labels are renumbered by class name to the method's map and a dataset lacking a class the
method needs stops with one ``DataError`` (``check_need``), so nothing trains on a wrong label;
case ids are anonymous hashes, and ``card_info`` holds only hashes and counts.
"""

from search.data.index import CaseRef, DatasetIndex, anonymous_id, open_dataset
from search.data.labels import canonical, remap_labels
from search.data.protocols import (CINE_ACDC, ECHO_CAMUS, ECHO_MYOCARDIUM, Member, Need, check_need, cine_parts, describe_split,
                                   keep_frames, load_for, members_of_cases, members_of_refs, protocol_cases, refs_for, segqc_parts,
                                   split_by_patient)
from search.data.spec import (KINDS, PHANTOM, SPEC_HELP, DataSpec, DataSpecError, argparse_data_spec, case_list_sha256,
                              config_without_phantom, parse_data_spec)

__all__ = [
    "CINE_ACDC", "ECHO_CAMUS", "ECHO_MYOCARDIUM", "KINDS", "PHANTOM", "SPEC_HELP", "CaseRef", "DataSpec", "DataSpecError",
    "DatasetIndex", "Member", "Need", "anonymous_id", "argparse_data_spec", "canonical", "case_list_sha256",
    "check_need", "cine_parts", "config_without_phantom", "describe_split", "keep_frames", "load_for", "members_of_cases",
    "members_of_refs", "open_dataset", "parse_data_spec", "protocol_cases", "refs_for", "remap_labels",
    "segqc_parts", "split_by_patient",
]
