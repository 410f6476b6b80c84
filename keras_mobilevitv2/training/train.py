"""``train``: keras.Model.fit on tf.data with the official recipe, resumable and distributable."""

import dataclasses
import json
import os
import shutil
import sys

import keras
import tensorflow as tf

from .. import data as data_lib
from ..files import atomic_output, write_json, write_text
from ..models import CHECKPOINT_SUFFIXES, copy_weights
from ..preprocessing import get_preprocessing
from ..weights.layouts import is_backbone_layer
from .callbacks import STATE_FILE, EpochSummary, ModelExport, RenameLogs, ResumeCheckpoint, RunHistory, read_json
from .recipe import LEARNING_RATE_RULES, TrainConfig, make_optimizer
from .tasks import get_task

CONFIG_FILE = "config.json"
WORKERS_DIR = "workers"  # where the workers other than the chief of a multi-worker run write
# Settings that may differ when a run is resumed: they do not change what is computed.
_RESUMABLE_CHANGES = ("cache_bytes", "strategy")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, or has nothing to resume)."""


@dataclasses.dataclass
class TrainResult:
    model: keras.Model  # the final model (EMA weights when EMA is on), as saved in model.keras
    history: list  # one dict per epoch of the whole run, as in history.csv
    run_dir: str


def make_strategy(name="auto"):
    """The tf.distribute strategy: ``auto`` (several GPUs: mirrored; TF_CONFIG: multi-worker;
    else one device), ``mirrored``, ``multiworker`` (driven by TF_CONFIG) or ``default``."""
    if name == "auto":
        if len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        elif os.environ.get("TF_CONFIG"):
            name = "multiworker"
        else:
            name = "default"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multiworker needs TF_CONFIG (the cluster and this worker's task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown strategy {name!r}: auto, mirrored, multiworker or default")


def _worker(strategy):
    """``(is_chief, index)`` of this process in a multi-worker cluster; (True, 0) otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, 0
    index = resolver.task_id or 0
    is_chief = resolver.task_type == "chief" or (resolver.task_type == "worker" and index == 0
                                                  and "chief" not in resolver.cluster_spec().as_dict())
    return is_chief, index


def _check_run_dir(run_dir, resume, overwrite):
    """Checks the run directory before anything is written; returns the saved state when resuming."""
    state_path = os.path.join(run_dir, "checkpoints", STATE_FILE)
    # Other workers of a multi-worker run write below workers/: that alone is no earlier run.
    exists = os.path.isdir(run_dir) and bool(set(os.listdir(run_dir)) - {WORKERS_DIR})
    if resume:
        if not os.path.isfile(state_path):
            raise RunDirError(f"{run_dir}: nothing to resume (no completed epoch in checkpoints/{STATE_FILE})")
        return read_json(state_path)
    if exists:
        if not overwrite:
            raise RunDirError(f"{run_dir} exists: pass --resume to continue it or --overwrite to start again")
        if not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            raise RunDirError(f"{run_dir} is not a training run (no {CONFIG_FILE}): refusing to delete it")
    return None


def _start_run_dir(run_dir):
    """Empties an earlier run (checked by ``_check_run_dir``) and makes the folders of a new one."""
    if os.path.isdir(run_dir):
        for entry in os.listdir(run_dir):
            if entry != WORKERS_DIR:
                path = os.path.join(run_dir, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)


def load_data(data, config, val_data=None, progress=True, annotations=None, val_annotations=None):
    """``(train, val)`` sources of ``config``'s task (see ``tasks``); val may be None."""
    config = config.task_defaults()
    return get_task(config.task).load_data(data, config, val_data, progress, annotations, val_annotations)


def initialise(model, path, skip_head=False):
    """Starts from a ``.keras`` model of this package or an official / timm checkpoint.

    ``skip_head``: the backbone only (a classifier of other classes, or a dense
    model started from a classification model, as the official recipe does).
    """
    path = os.fspath(path)
    if path.endswith(CHECKPOINT_SUFFIXES):
        from ..weights import load_pytorch_checkpoint

        load_pytorch_checkpoint(model, path, skip_head=skip_head)
    elif path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--init-from model not found: {path}")
        source = keras.saving.load_model(path, safe_mode=True, compile=False)
        dense = get_preprocessing(model).task != "classification"
        skip = [layer.name for layer in model.layers
                if skip_head and (not is_backbone_layer(layer.name) if dense else layer.name == "predictions")]
        try:
            copy_weights(model, source, skip=skip)
        except ValueError as error:
            hint = "" if skip_head else " (another task or other classes? pass --skip-head to load the backbone only)"
            raise ValueError(f"the --init-from model does not fit{hint}: {error}") from None
    else:
        raise ValueError(f"{path}: --init-from takes a .keras model or a PyTorch checkpoint")


def _build_model(task, config, class_names, input_shape, training, dtype_policy=None):
    previous = keras.config.dtype_policy()
    if dtype_policy:
        keras.config.set_dtype_policy(dtype_policy)
    try:
        return task.build_model(config, class_names, input_shape, training)
    finally:
        keras.config.set_dtype_policy(previous)


def train(data, out, config=None, val_data=None, resume=False, overwrite=False, callbacks=(), verbose=1,
          annotations=None, val_annotations=None, **settings):
    """Trains a model of the registry (a classifier or a segmentation model); writes the run directory ``out``.

    Args:
        data: classification: ``DIR/<class>/*``, ``DIR/train`` + ``DIR/val``, or a ``make_tfrecords``
            folder; segmentation: PASCAL VOC, ADE20k, or ``images/`` + ``masks/`` (also under train/, val/).
        out: the run directory: checkpoints/ (resume state, ema.keras, best.keras),
            history.csv, training_curves.png, tensorboard/, config.json, data_report.txt
            and, at the end, model.keras (EMA weights, class names and preprocessing inside).
        config: a ``TrainConfig``; or give its fields as keyword arguments.
            Detection: COCO JSON (images folder + ``annotations``), Pascal VOC, or
            ``DIR/train/images`` + ``DIR/train/annotations.json`` (the sample's layout).
        val_data: a separate validation folder (else the data's val split, or ``config.val_split``).
        annotations, val_annotations: detection's COCO annotation files for ``data`` and ``val_data``.
        resume: continue the run in ``out`` from its last completed epoch.
        overwrite: delete an existing run in ``out`` and start again.
        callbacks: more Keras callbacks.
        verbose: Keras' progress bar (1) or not (0); the per-epoch line is always printed.
    """
    config = dataclasses.replace(config or TrainConfig(), **settings)
    strategy = make_strategy(config.strategy)
    is_chief, worker_index = _worker(strategy)
    out = os.fspath(out)
    run_dir = out if is_chief else os.path.join(out, WORKERS_DIR, str(worker_index))

    state = _check_run_dir(run_dir, resume, overwrite)
    if state is not None:
        saved = read_json(os.path.join(run_dir, CONFIG_FILE))
        requested = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as config.json holds them
        changed = [k for k in saved["requested"] if k not in _RESUMABLE_CHANGES
                   and k in requested and saved["requested"][k] != requested[k] and settings.get(k) is not None]
        if changed:
            raise RunDirError(f"{run_dir}: cannot resume with other settings ({', '.join(changed)}); "
                              "resume with the run's own settings or start a new run")
        config = dataclasses.replace(TrainConfig(**saved["requested"]),
                                     **{k: requested[k] for k in _RESUMABLE_CHANGES})

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    task = get_task(config.task_defaults().task)
    # bad data fails before anything is written
    train_source, val_source = load_data(data, config, val_data, annotations=annotations,
                                         val_annotations=val_annotations)
    if state is None:
        _start_run_dir(run_dir)
    report = train_source.report() if hasattr(train_source, "report") else ""
    if report:
        print(report, file=sys.stderr, flush=True)
    write_text(os.path.join(run_dir, "data_report.txt"),
               f"training: {task.data_summary(train_source)}\n"
               f"validation: {task.data_summary(val_source) if val_source else 'none'}\n{report}\n")

    steps = data_lib.steps_per_epoch(train_source, config.batch_size)
    class_names = task.class_names(train_source)
    resolved, why = config.resolved(steps, len(train_source), len(class_names))
    image_size = resolved.input_size
    if state is None:
        write_json(os.path.join(run_dir, CONFIG_FILE), {
            "requested": dataclasses.asdict(config), "resolved": dataclasses.asdict(resolved), "recipe_why": why,
            "data": os.path.abspath(os.fspath(data)), "class_names": list(class_names),
            "replicas": strategy.num_replicas_in_sync})
    lr_rule = "" if config.learning_rate else f" ({LEARNING_RATE_RULES[resolved.recipe]})"
    print(f"recipe: {resolved.recipe} ({why}): augmentation {resolved.augmentation}, peak lr "
          f"{resolved.learning_rate:.3g}{lr_rule}; --recipe and the flags override", flush=True)
    print(f"{resolved.model} ({task.name}) at {image_size[0]}x{image_size[1]}: {len(train_source)} training images, "
          f"{len(val_source) if val_source else 0} validation, {len(class_names)} classes; "
          f"{steps} steps of {config.batch_size} per epoch on {strategy.num_replicas_in_sync} replica(s); "
          f"peak lr {resolved.learning_rate:.3g}, weight decay {resolved.weight_decay:g}, "
          f"warm-up {resolved.warmup_steps} steps", flush=True)

    dtype_policy = None
    if config.mixed_precision:
        dtype_policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    with strategy.scope():
        model = _build_model(task, resolved, class_names, (*image_size, 3) if not config.multi_scale
                             else (None, None, 3), training=True, dtype_policy=dtype_policy)
        if config.init_from and state is None:
            initialise(model, config.init_from, config.skip_head)
        if strategy.num_replicas_in_sync > 1:
            # As the official multi-GPU runs: batch statistics over the global batch, not each replica's.
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        if config.freeze_backbone:
            head = {layer.name for layer in task.head_layers(model)}
            for layer in model.layers:
                layer.trainable = layer.name in head
        model.compile(
            optimizer=make_optimizer(resolved, steps),
            jit_compile=False,  # XLA compiles slowly on CPU and breaks exact resumption
            **task.compile_arguments(resolved, class_names),
        )
        # Built here, eagerly: created inside fit's first trace, Adam's moments and the EMA copies (three
        # variables per weight) each get a lazy-initialisation cond, which made that trace 20 s slower.
        model.optimizer.build(model.trainable_variables)
        initial_epoch = 0
        if state is not None:
            model.load_weights(os.path.join(run_dir, "checkpoints", state["weights"]))
            initial_epoch = int(state["completed_epochs"])
            print(f"resuming {run_dir} after epoch {initial_epoch}", flush=True)

    final_path = os.path.join(run_dir, "model.keras")
    if initial_epoch >= resolved.epochs and os.path.isfile(final_path):
        print(f"{run_dir}: all {resolved.epochs} epochs are done", flush=True)
        return TrainResult(model=keras.saving.load_model(final_path, safe_mode=True),
                           history=RunHistory(run_dir, initial_epoch, plot=False).rows, run_dir=run_dir)
    train_dataset, steps = task.train_dataset(train_source, resolved, initial_epoch)
    val_dataset = None
    if val_source is not None and len(val_source):
        val_dataset = task.val_dataset(val_source, resolved, get_preprocessing(model))

    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multiworker:
        _build_before_multiworker_fit(model, strategy, train_dataset)

    inference = _build_model(task, resolved, class_names, (*image_size, 3), training=False)

    def export(path):  # every epoch: ema.keras, and best.keras when it improves
        save_inference_model(model, path, inference)

    checkpoints = os.path.join(run_dir, "checkpoints")
    # In this order: the raw weights are checkpointed, then the EMA weights are swapped in for the task's own
    # validation (detection's COCO AP) and the exports, and the history records what they logged.
    run_callbacks = [RenameLogs(task.log_names), ResumeCheckpoint(checkpoints, state)]
    if resolved.ema_momentum > 0:
        run_callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    run_callbacks += [
        *task.callbacks(val_source, resolved, model),
        ModelExport(export, checkpoints, monitor=task.monitor),
        RunHistory(run_dir, initial_epoch, curves=task.curves),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
        EpochSummary(steps * config.batch_size),
        *callbacks,
    ]
    model.fit(train_dataset, epochs=resolved.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
              validation_data=val_dataset, callbacks=run_callbacks, verbose=verbose, shuffle=False)
    save_inference_model(model, final_path, inference)
    rows = next(c for c in run_callbacks if isinstance(c, RunHistory)).rows
    return TrainResult(model=keras.saving.load_model(final_path, safe_mode=True), history=rows, run_dir=run_dir)


def _build_before_multiworker_fit(model, strategy, dataset):
    """Builds the compiled model on zeros shaped like a batch, and tells fit() not to build it again.

    Keras 3.15's fit() builds a distributed model by strategy.reduce() of its first
    batch, a nested structure that MultiWorkerMirroredStrategy cannot reduce.
    """
    batch = tf.nest.map_structure(lambda spec: tf.zeros([d or 1 for d in spec.shape], spec.dtype),
                                  dataset.element_spec)
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    _patch_keras_multiworker_reduction()


def _patch_keras_multiworker_reduction():
    """Keras 3.15 averages logs over workers with reduce(MEAN, axis=0), which fails on the scalar
    metrics (tensorflow#72388); average them with axis=None instead. Only multi-worker runs change."""
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    original = tensorflow_trainer.reduce_per_replica
    if getattr(original, "multiworker_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.multiworker_fixed = True
    tensorflow_trainer.reduce_per_replica = reduce_per_replica


def save_inference_model(model, path, inference):
    """The trained weights in ``inference`` (the task's float32 model without training-only outputs, at the
    training size, built once by the caller), written atomically."""
    copy_weights(inference, model)
    with atomic_output(path) as temporary:
        inference.save(temporary)
