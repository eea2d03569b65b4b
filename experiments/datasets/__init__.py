"""Data sources: each dataset is a schema class registered by name (base.DATASETS), whose
fields are its `data.*` keys and whose `load(seed)` gives `cnn.data.Splits`.

    base          DataConfig (the keys every dataset shares), the registry, load_splits
    cifar10       data=cifar10: CIFAR-10, found under data.root or downloaded there
    image_folder  data=image_folder: a folder of class folders of images
    digits        data=digits: scikit-learn's 8x8 digits, no download
    images        image files decoded as the network's input (also for predict)
    held_out      classes, held-out test sets and splits for datasets without official ones

A new dataset is one module here defining and registering its schema class, plus
`conf/data/<name>.yaml`; `base.registered()` imports every module of this package, so
the registry, the config schemas and validation find it.
"""
