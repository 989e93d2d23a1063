# The fine-tuning recipe of the ninth run, sourced by its train.sh, the tenth run's train.sh and the
# tenth run's ablation: augmentations (degradations up to severity 2), the validation parts, the optimiser.
AUG="augment.scale=0.1 augment.occlusion_prob=0.25 augment.motion_blur_prob=0.1 augment.color_prob=0.4 \
     augment.grey_prob=0.1 augment.jpeg_prob=0.2 augment.defocus_prob=0.15 augment.lowres_prob=0.1 \
     augment.noise_prob=0.1 augment.dark_prob=0.1 augment.object_occlusion_prob=0.2 augment.degrade_max_severity=2.0"
VAL="--extra-val-data runs/synth/val_80 runs/degraded_val1 runs/degraded_val_hard"
FT="optimizer=adamw weight_decay=0 lr=0.0002 warmup_steps=20 sigma_mode=fixed sigmas=[2] epochs=1000 \
    lr_milestones=[] lr_milestone_fractions=[0.5,0.8] lr_gamma=0.3 ema_decay=0.998"
